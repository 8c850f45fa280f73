"""The Python API: :func:`train`, :func:`load`, :func:`evaluate`, :func:`export`,
:func:`export_tfrecord`, :func:`list_backends`, :func:`list_tasks`, :func:`load_spec`.

The facade asks the task and backend registries; it holds no task's logic.

Example (runs offline in about a minute on 2 CPU cores)::

    import bertbridge

    clf = bertbridge.train("examples/sentiment/spec.yaml", overrides=["training.epochs=1"])
    print(clf.metrics["accuracy"])
    clf = bertbridge.load(clf.path)
    print(clf.predict(["An absolute joy from start to finish."]))
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from bertbridge.core.distributed import data_parallel
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.io import locks
from bertbridge.core.io.artifacts import Manifest, atomic_directory, check_output_dir, check_weights, record_export
from bertbridge.core.plugins.registry import backends, export_reader, export_refiner, models, select_backend, tasks
from bertbridge.core.reports.record import read_record
from bertbridge.core.spec import TaskSpec, apply_overrides
from bertbridge.core.task import Predictor
from bertbridge.core.tasks import export_quality
from bertbridge.core.text.tokenize import TextEncoder
from bertbridge.core.training.run import run_training

SpecLike = Union[TaskSpec, Mapping[str, Any], str, os.PathLike]


def load_spec(spec: SpecLike, overrides: Sequence[str] = ()) -> TaskSpec:
    """A validated :class:`TaskSpec` from a spec object, a dict or a YAML/JSON path; its
    ``task.type`` must be a registered task, which checks its own fields."""
    loaded = _parse_spec(spec, overrides)
    tasks().get(loaded.task.type).check_spec(loaded)
    return loaded


def _parse_spec(spec: SpecLike, overrides: Sequence[str]) -> TaskSpec:
    """The spec with its generic fields checked (the task's own checks come with the run)."""
    if isinstance(spec, TaskSpec):
        return spec.with_overrides(overrides) if overrides else spec
    if isinstance(spec, Mapping):
        return TaskSpec.from_dict(apply_overrides(spec, overrides))
    if isinstance(spec, (str, os.PathLike)):
        return TaskSpec.from_file(spec, overrides)
    raise SpecError(f"spec must be a TaskSpec, a dict or a path to a YAML/JSON file, got {type(spec).__name__}.")


def train(
    spec: SpecLike,
    *,
    backend: Optional[str] = None,
    overrides: Sequence[str] = (),
    output_dir: Union[str, os.PathLike, None] = None,
) -> Predictor:
    """Fine-tune the spec's model on its data and save it to ``output_dir`` (default: the spec's).

    Everything that can be checked cheaply (spec, backend, model folder, every data file and
    label) is checked before the framework is imported. Returns the task's predictor (a
    :class:`~bertbridge.core.tasks.classification.predictor.TextClassifier`, a
    :class:`~bertbridge.core.tasks.qa.predictor.QuestionAnswerer`, ...); ``.metrics`` has the
    validation metrics (and ``test_*`` ones when ``data.test`` is set), ``.path`` the saved folder.

    Data-parallel (see :mod:`bertbridge.core.distributed.data_parallel`): with ``distribution`` asking for
    several processes this call launches them on this machine, waits, and returns the model
    rank 0 saved. In a process started by the engine's launcher (``torchrun``, ``TF_CONFIG``,
    ``DMLC_ROLE=worker``) it trains as that worker; there, ranks other than 0 return None.
    """
    spec = _parse_spec(spec, overrides)
    task = tasks().get(spec.task.type)
    chosen = select_backend(backend, spec.backend, task=task.name)
    if not chosen.trains:
        trainers = ", ".join(b.name for b in backends() if b.trains and b.supports(task.name, task.head))
        raise NotSupportedError(f"backend {chosen.name!r} runs exported models only and cannot train; train with one of: {trainers}.")
    target = check_output_dir(Path(output_dir) if output_dir is not None else Path(spec.output_dir))
    role = data_parallel.role(spec, chosen)
    data_parallel.check(spec, chosen, role)
    with _one_writer(spec, target, role):
        if role == "launcher":
            task.check_spec(spec)
            models().resolve(spec.model.name)  # a missing model fails here, once, not in every worker
            return load(data_parallel.launch_locally(spec, chosen, target))
        return run_training(task, spec, chosen, target, role)  # type: ignore[return-value]


@contextlib.contextmanager
def _one_writer(spec: TaskSpec, target: Path, role: str) -> Iterator[None]:
    """Locks on the output (and checkpoint) folder for the run; a data-parallel worker runs
    under its launcher's locks."""
    if role == "worker":
        yield
        return
    checkpoints = Path(spec.training.checkpoint_dir).expanduser().resolve() if spec.training.checkpoint_dir else None
    if checkpoints == target:
        raise SpecError(f"training.checkpoint_dir and output_dir are the same folder ({target}); the model save "
                        "replaces that folder, so give checkpoints a folder of their own.")
    with contextlib.ExitStack() as stack:  # a lock taken before a later one fails is released at once
        stack.enter_context(locks.hold(target, "output_dir"))
        if checkpoints is not None:
            stack.enter_context(locks.hold(checkpoints, "checkpoint_dir"))
        yield


def load(path: Union[str, os.PathLike], *, backend: Optional[str] = None, batch_size: int = 64) -> Predictor:
    """Open a saved model folder as its task's predictor (a ``TextClassifier`` for
    ``text_classification``, a ``QuestionAnswerer`` for ``question_answering``). The backend
    is ``backend`` if given, else the one that trained it; any backend that supports the
    task can open any backend's artifact. An export folder (``bertbridge export``) is run by
    the backend that opens its format (``onnx``: ONNX Runtime, ``pt2``: PyTorch) unless
    ``backend`` says otherwise."""
    folder = Path(path)
    manifest = Manifest.read(folder)
    check_weights(folder)
    task = tasks().get(manifest.task)
    fmt = manifest.export.get("format")
    reader = export_reader(fmt) if fmt and backend is None else None
    chosen = reader or select_backend(backend, manifest.backend, task=task.name)
    chosen.ensure_supports(task.name, task.head)
    setup = task.model_setup(manifest)
    model = chosen.load_export(folder, fmt, setup) if fmt in chosen.loads_exports else chosen.load_model(folder, setup)
    predictor = task.predictor(model, TextEncoder.from_pretrained(folder), manifest, batch_size=batch_size)
    predictor.path = folder.resolve()
    predictor.running_backend = chosen.name
    predictor.run = read_record(folder)  # type: ignore[attr-defined]  # a re-save keeps the curves and card
    return predictor


def evaluate(path: Union[str, os.PathLike], data: Union[str, os.PathLike], *, backend: Optional[str] = None) -> dict[str, float]:
    """Metrics of a saved model on a labelled file read like its training data."""
    return load(path, backend=backend).evaluate(data)


def export_tfrecord(
    spec: SpecLike,
    out_dir: Union[str, os.PathLike],
    *,
    split: str = "train",
    shards: int = 1,
    fixed_length: bool = False,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Tokenize one split of the spec (``train``, ``validation`` or ``test``) with the spec's
    model and write it as TFRecord shards plus ``bertbridge-tfrecord.json`` (see
    :mod:`bertbridge.core.data.tfrecord` for the schema). Returns the shard paths."""
    spec = load_spec(spec, overrides)
    return tasks().get(spec.task.type).export_tfrecord(spec, split, Path(out_dir), shards=shards, fixed_length=fixed_length)


def export(
    path: Union[str, os.PathLike],
    fmt: str,
    out_dir: Union[str, os.PathLike],
    *,
    backend: Optional[str] = None,
    optimize: bool = False,
    quantize: Optional[str] = None,
    validate: Union[str, os.PathLike, None] = None,
    max_drop: float = 1.0,
    **options: Any,
) -> Path:
    """Export a saved model to a serving format (``onnx``, ``pt2``, ``savedmodel``, ...); returns the
    exported file. The backend is ``backend`` if given, else the one that trained the model if it
    writes ``fmt``, else any installed backend that does.

    ``optimize`` applies the format's graph fusions and ``quantize`` (``"int8"``: dynamic, weights
    int8, activations quantized at run time) its quantization, by the backend that serves the format
    (ONNX Runtime for ``onnx``). A quantized export is scored against the model on ``validate`` (a
    labelled file; default: the training run's validation file) by the task's metric (accuracy or
    micro-F1, QA F1); the numbers go into the export's ``bertbridge.json`` (``export.validation``),
    and a drop over ``max_drop`` points is refused with both scores, writing nothing.

    Example::

        >>> out = bertbridge.export("outputs/sentiment", "onnx", "outputs/sentiment-int8",   # doctest: +SKIP
        ...                         optimize=True, quantize="int8", validate="examples/sentiment/dev.tsv")
        >>> bertbridge.load(out.parent).backend                                              # doctest: +SKIP
        'onnx'
    """
    folder = Path(path)
    manifest = Manifest.read(folder)
    check_weights(folder)
    task = tasks().get(manifest.task)
    if not task.exportable:
        able = ", ".join(t.name for t in tasks() if t.exportable)
        raise NotSupportedError(f"{folder}: a {manifest.task} model; the export formats serve {able} models. "
                                "Serve it with 'bertbridge serve' or the SageMaker serving functions instead.")
    if manifest.export:
        raise NotSupportedError(f"{folder}: an export ({manifest.export.get('format')}), not a model folder; export "
                                "from the model folder that 'bertbridge train' wrote (the export would carry this one's files).")
    if not quantize and (validate is not None or max_drop != 1.0):
        raise SpecError("validate and max_drop judge a quantized export: pass quantize='int8', or leave them out.")
    if not max_drop >= 0:
        raise SpecError(f"max_drop={max_drop!r}: give the largest drop allowed, in points (0 or more).")
    chosen = select_backend(backend, task=manifest.task) if backend is not None else _export_writer(fmt, manifest.backend)
    if fmt not in chosen.exports:
        raise NotSupportedError(f"backend {chosen.name!r} cannot export {fmt!r}; it writes: {', '.join(chosen.exports) or 'nothing'}.")
    setup = task.model_setup(manifest)
    if not (optimize or quantize):
        return chosen.export(folder, fmt, Path(out_dir), setup=setup, **options)
    refiner = export_refiner(fmt, quantize)  # everything that can fail cheaply fails before the export work
    data = export_quality.validation_file(validate, manifest, folder) if quantize else None
    with atomic_directory(Path(out_dir)) as staging:
        written = chosen.export(folder, fmt, staging / "plain", setup=setup, **options)
        _move_up(staging / "plain", staging)
        details = refiner.refine_export(staging, fmt, optimize=optimize, quantize=quantize)
        if data is not None:
            exported = refiner.load_export(staging, fmt, setup)
            details["validation"] = export_quality.compare(task, manifest, chosen.load_model(folder, setup), exported,
                                                           TextEncoder.from_pretrained(folder), data, max_drop=max_drop)
        record_export(staging, fmt, written.name, **details)
    return Path(out_dir).resolve() / written.name


def _move_up(inner: Path, outer: Path) -> None:
    """Move an export written into ``outer/inner`` up into ``outer`` (the folder being staged)."""
    for entry in inner.iterdir():
        entry.rename(outer / entry.name)
    inner.rmdir()


def _export_writer(fmt: str, trained_by: str):
    """The backend that writes ``fmt``: the one that trained the model if it can, else an installed one."""
    writers = sorted((b for b in backends() if fmt in b.exports), key=lambda b: b.name != trained_by)
    if not writers:
        formats = sorted({f"{f} ({b.name})" for b in backends() for f in b.exports})
        raise NotSupportedError(f"invalid export format {fmt!r}; available: {', '.join(formats) or 'none'}.")
    installed = [b for b in writers if b.status().available]
    chosen = (installed or writers)[0]
    chosen.ensure_available()
    return chosen


def list_backends():
    """Status of every registered backend (name, available, version, detail), sorted by name."""
    return [b.status() for b in backends()]


def list_tasks():
    """Every registered task (name, summary, plugin module), sorted by name."""
    return [{"name": t.name, "summary": t.summary, "module": type(t).__module__} for t in tasks()]
