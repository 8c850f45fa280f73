"""Entry point ``bertbridge.tasks: question_answering``, registered like any third-party task."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_tasks(registry) -> None:
    from bertbridge.core.tasks.qa.task import QuestionAnsweringTask

    registry.add(QuestionAnsweringTask())
