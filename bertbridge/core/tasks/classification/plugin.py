"""Entry point ``bertbridge.tasks: text_classification``, registered like any third-party task."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_tasks(registry) -> None:
    from bertbridge.core.tasks.classification.task import ClassificationTask

    registry.add(ClassificationTask())
