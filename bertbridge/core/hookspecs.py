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
    from pathlib import Path
    from typing import Optional

    from bertbridge.core.plugins.registry import BackendRegistry, ModelRegistry, TaskRegistry
    from bertbridge.core.spec import TaskSpec

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
    ``stage="eval"``, once training ends with ``stage="saved"`` (the validation metrics of
    the weights the model folder gets: the best evaluation's with ``training.restore_best``,
    else the last; the value a hyperparameter search scores a trial by), and after the
    final test pass with ``stage="test"``. ``step`` counts optimizer steps; ``epoch`` is
    fractional. Metric names are prefixed with the stage (``eval_accuracy``, ``saved_accuracy``). The built-in logger prints one
    ``name=value`` line per metric for SageMaker metric regexes; add a plugin to
    also send them elsewhere (MLflow, W&B). The return value is ignored (return None).
    """


@hookspec
def bertbridge_run_started(spec: "TaskSpec", backend: str) -> None:
    """A training run is about to start its first optimizer step.

    Fires once per run, in the process that logs and saves (rank 0 of a data-parallel job),
    after the spec, the model folder and every data file were checked and the model was
    built, so a plugin that raises here (a missing package, an unreachable tracking server)
    stops the run before any training. ``spec`` is the resolved :class:`~bertbridge.core.spec.TaskSpec`
    (``spec.tracking`` switches on the built-in TensorBoard and MLflow plugin); ``backend`` is
    the backend's name. Every call is followed by one ``bertbridge_run_finished``, also when this
    hook raises (in this plugin or another: pluggy stops at the first that raises, and every
    plugin then hears ``bertbridge_run_finished`` with the error), so a plugin may get a
    ``run_finished`` for a run it did not see start.
    The return value is ignored (return None).
    """


@hookspec
def bertbridge_run_finished(spec: "TaskSpec", model_dir: "Optional[Path]", metrics: Mapping[str, float],
                            error: "Optional[BaseException]") -> None:
    """A training run that fired ``bertbridge_run_started`` has ended.

    Fires once per ``bertbridge_run_started``, after the model folder was saved or the run
    failed. On success ``model_dir`` is the saved model folder, ``metrics`` its final metrics (what
    ``bertbridge.json`` holds) and ``error`` is None. On failure, or on Ctrl-C, ``model_dir``
    is None, ``metrics`` is empty and ``error`` is the exception, which is re-raised after the
    hook returns. The return value is ignored (return None).
    """
