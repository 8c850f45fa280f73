"""Hook specifications: the points where plugins (tasks and backends included) plug in.

A plugin is any module or object with functions named like these hooks and
marked with :data:`hookimpl`. Plugins are found through the ``bertbridge.backends``
and ``bertbridge.tasks`` entry-point groups (the built-in tasks and backends are
registered exactly so); other plugins can be registered on
:func:`bertbridge.core.plugins.registry.plugin_manager` directly.

Example, a third-party backend package's plugin module::

    from bertbridge.core.hookspecs import hookimpl

    @hookimpl
    def bertbridge_register_backends(registry):
        from my_package.backend import JaxBackend   # must not import jax here
        registry.add(JaxBackend())

and in its ``setup.py``::

    entry_points={"bertbridge.backends": ["jax = my_package.plugin"]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from bertbridge.core.plugins.registry import BackendRegistry, ModelRegistry, TaskRegistry

PROJECT = "bertbridge"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bertbridge_register_backends(registry: "BackendRegistry") -> None:
    """Add backends to ``registry`` with ``registry.add(backend)``.

    Fires once per process, the first time any backend is looked up or listed
    (``bertbridge backends``, training, loading). Implementations must be cheap
    and must not import their framework: ``registry.add`` takes a
    :class:`~bertbridge.core.backend.Backend` whose framework is imported only
    when it trains or loads a model. The return value is ignored (return None).
    """


@hookspec
def bertbridge_register_tasks(registry: "TaskRegistry") -> None:
    """Add tasks to ``registry`` with ``registry.add(task)``.

    Fires once per process, the first time any task is looked up or listed
    (``bertbridge tasks``, training, loading, serving). ``registry.add`` takes a
    :class:`~bertbridge.core.task.Task` whose ``name`` is the spec's ``task.type``;
    the built-in ``text_classification`` and ``question_answering`` are added
    through this hook too. Implementations must be cheap and must not import a
    framework. The return value is ignored (return None).
    """


@hookspec
def bertbridge_register_models(registry: "ModelRegistry") -> None:
    """Add model aliases with ``registry.add(alias, resolve, description, hub_id="")``.

    Fires once per process, the first time a ``model.name`` that is not an
    existing folder is resolved, or aliases are listed. ``resolve`` is called only
    when that alias is used and returns the local folder of a Hugging Face model;
    it raises :class:`~bertbridge.core.errors.ModelNotFoundError` with an install
    hint when the files are missing. ``hub_id`` (optional) names the Hugging Face Hub
    model the alias stands for; model cards give it as ``base_model``. The return value
    is ignored (return None).
    """


@hookspec
def bertbridge_log_metrics(metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
    """Receive metrics as they are produced.

    Fires every ``training.log_interval`` optimizer steps with ``stage="train"``
    (loss, learning rate, throughput), after each validation pass with
    ``stage="eval"``, and after the final test pass with ``stage="test"``.
    ``step`` counts optimizer steps; ``epoch`` is fractional. Metric names are
    prefixed with the stage (``eval_accuracy``). The built-in logger prints one
    ``name=value`` line per metric for SageMaker metric regexes; add a plugin to
    also send them elsewhere (MLflow, W&B). The return value is ignored (return None).
    """
