"""The Python API: :func:`train`, :func:`load`, :func:`evaluate`, :func:`list_backends`.

Example (runs offline in about a minute on 2 CPU cores)::

    import bertbridge

    clf = bertbridge.train("examples/sentiment/spec.yaml", overrides=["training.epochs=1"])
    print(clf.metrics["accuracy"])
    clf = bertbridge.load(clf.path)
    print(clf.predict(["An absolute joy from start to finish."]))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from bertbridge.core.backend import ModelSetup
from bertbridge.core.data.labels import LabelMap
from bertbridge.core.data.readers import infer_format, read_examples
from bertbridge.core.distributed import data_parallel
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.io.artifacts import Manifest, check_output_dir, check_weights
from bertbridge.core.plugins.registry import backends, models, plugin_manager, select_backend
from bertbridge.core.spec import TaskSpec
from bertbridge.core.tasks.classification.predictor import Split, TextClassifier, read_split
from bertbridge.core.text.tokenize import TextEncoder
from bertbridge.core.training.loop import fit, monitor_metric

SpecLike = Union[TaskSpec, Mapping[str, Any], str, os.PathLike]


def load_spec(spec: SpecLike, overrides: Sequence[str] = ()) -> TaskSpec:
    """A validated :class:`TaskSpec` from a spec object, a dict or a YAML/JSON path."""
    if isinstance(spec, TaskSpec):
        return spec.with_overrides(overrides) if overrides else spec
    if isinstance(spec, Mapping):
        from bertbridge.core.spec import apply_overrides

        return TaskSpec.from_dict(apply_overrides(spec, overrides))
    if isinstance(spec, (str, os.PathLike)):
        return TaskSpec.from_file(spec, overrides)
    raise SpecError(f"spec must be a TaskSpec, a dict or a path to a YAML/JSON file, got {type(spec).__name__}.")


def _log(metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
    plugin_manager().hook.bertbridge_log_metrics(metrics=dict(metrics), stage=stage, step=step, epoch=epoch)


def train(
    spec: SpecLike,
    *,
    backend: Optional[str] = None,
    overrides: Sequence[str] = (),
    output_dir: Union[str, os.PathLike, None] = None,
) -> TextClassifier:
    """Fine-tune the spec's model on its data and save it to ``output_dir`` (default: the spec's).

    Everything that can be checked cheaply (spec, backend, model folder, every
    data file and label) is checked before the framework is imported.
    Returns the trained :class:`TextClassifier` (or, for ``question_answering``, a
    :class:`~bertbridge.core.tasks.qa.predictor.QuestionAnswerer`); ``.metrics`` has the validation metrics
    (and ``test_*`` ones when ``data.test`` is set), ``.path`` the saved folder.

    Data-parallel (see :mod:`bertbridge.core.distributed.data_parallel`): with ``distribution`` asking for
    several processes this call launches them on this machine, waits, and returns the model
    rank 0 saved. In a process started by the engine's launcher (``torchrun``, ``TF_CONFIG``,
    ``DMLC_ROLE=worker``) it trains as that worker; there, ranks other than 0 return None.
    """
    spec = load_spec(spec, overrides)
    chosen = select_backend(backend, spec.backend, task=spec.task.type)
    if not chosen.trains:
        trainers = ", ".join(b.name for b in backends() if b.trains and spec.task.type in b.tasks)
        raise NotSupportedError(f"backend {chosen.name!r} runs exported models only and cannot train; train with one of: {trainers}.")
    target = check_output_dir(Path(output_dir) if output_dir is not None else Path(spec.output_dir))
    role = data_parallel.role(spec, chosen)
    data_parallel.check(spec, chosen, role)
    if role == "launcher":
        models().resolve(spec.model.name)  # a missing model fails here, once, not in every worker
        return load(data_parallel.launch_locally(spec, chosen, target))
    if spec.task.type == "question_answering":
        from bertbridge.core.tasks.qa.training import train_question_answering

        return train_question_answering(spec, chosen, target, role)  # type: ignore[return-value]
    debug_dir = _check_debugger(spec, chosen, target)
    if spec.data.train is None:
        raise SpecError("data.train is not set: give the path of the training file (csv, tsv or jsonl).")
    multi = spec.task.multi_label
    monitor_metric(spec.training, multi, spec.data.validation is not None)

    model_dir = models().resolve(spec.model.name)
    check_weights(model_dir)
    encoder = TextEncoder.from_pretrained(model_dir)
    encoder.check_max_length(spec.training.max_seq_length)

    train_examples = None
    if infer_format(spec.data.train, spec.data.format) == "tfrecord":
        from bertbridge.core.data.tfrecord import read_metadata

        saved = read_metadata(Path(spec.data.train)).get("labels")
        label_map = LabelMap.from_config(spec.data) if (spec.data.labels or spec.data.labels_file or not saved) else LabelMap(tuple(saved))
    else:
        train_examples = read_examples(spec.data.train, spec.data, multi_label=multi)
        label_map = LabelMap.from_config(spec.data, train_examples)
    manifest = Manifest(
        task=spec.task.type,
        labels=label_map.labels,
        backend=chosen.name,
        max_seq_length=spec.training.max_seq_length,
        lowercase=encoder.lowercase,
        multi_label=multi,
        threshold=spec.task.threshold,
        text_pair=spec.data.text_pair_column is not None,
        base_model=spec.model.name,
        data={
            k: getattr(spec.data, k)
            for k in ("format", "header", "text_column", "text_pair_column", "label_column", "label_separator", "encoding")
        },
    )
    setup = ModelSetup(
        num_labels=len(label_map),
        multi_label=multi,
        id2label=label_map.id2label,
        seed=spec.training.seed,
        mixed_precision=spec.training.mixed_precision,
        weight_decay=spec.training.weight_decay,
        max_grad_norm=spec.training.max_grad_norm,
    )
    # Read every split before building the model, so a bad row fails in seconds.
    def split(path: str, examples=None) -> Split:
        return read_split(
            path, spec.data, encoder, label_map,
            max_length=spec.training.max_seq_length, multi_label=multi, examples=examples,
        )

    train_split = split(spec.data.train, train_examples)
    validation = split(spec.data.validation) if spec.data.validation else None
    test = split(spec.data.test) if spec.data.test else None

    model, collective = data_parallel.create_model(chosen, model_dir, setup, spec, role)
    clf = TextClassifier(model, encoder, manifest, batch_size=spec.training.eval_batch_size)
    evaluate = (lambda: clf.evaluate_split(validation, show_progress=False)) if validation is not None else None
    observer = _debug_observer(spec, chosen, model, validation or train_split, encoder, debug_dir) if debug_dir else None
    result = fit(
        model, train_split.features, train_split.targets, spec.training,
        multi_label=multi, evaluate=evaluate, log=_log, pad_id=encoder.pad_id,
        fingerprint=_run_fingerprint(spec, chosen.name, train_split, validation), observer=observer,
        collective=collective,
    )
    if collective is not None and not collective.is_main:
        collective.close()
        return None  # type: ignore[return-value]
    if observer is not None:
        clf.debug_report = observer.close()  # type: ignore[attr-defined]
        verdicts = {f"debugger_rule_{k}_triggered": float(bool(v.get("triggered"))) for k, v in clf.debug_report.rules.items()}
        _log(verdicts, "debugger", result.steps, result.epochs)
    metrics = dict(result.final_metrics)
    metrics["train_samples_per_s"] = result.train_samples_per_s
    metrics["train_seconds"] = result.train_seconds
    if test is not None:
        test_metrics = clf.evaluate_split(test)
        _log({f"test_{k}": v for k, v in test_metrics.items()}, "test", result.steps, result.epochs)
        metrics.update({f"test_{k}": v for k, v in test_metrics.items()})
    metrics.update(data_parallel.worker_summary(collective))
    clf.save(target, metrics=metrics)
    if collective is not None:
        collective.close()
    clf.training_result = result  # type: ignore[attr-defined]
    return clf


def _check_debugger(spec: TaskSpec, chosen, target: Path) -> Optional[Path]:
    """The trial folder of a debugger run (checked before any work), or None."""
    if not spec.debugger.attention:
        return None
    if not chosen.debugger:
        able = ", ".join(b.name for b in backends() if b.debugger) or "none installed"
        raise NotSupportedError(
            f"debugger.attention is set, but backend {chosen.name!r} has no SageMaker Debugger capture; "
            f"backends with it: {able}. Set backend: mxnet or debugger.attention: false."
        )
    from bertbridge.core.debugger.capture import REPORT_NAME

    out = Path(spec.debugger.out_dir) if spec.debugger.out_dir else target.parent / f"{target.name}-debug"
    if out.exists() and any(out.iterdir()) and not (out / REPORT_NAME).exists():
        raise SpecError(
            f"debugger.out_dir {out} is a non-empty folder that is not a bertbridge trial; "
            "choose an empty or new folder (an earlier bertbridge trial there is replaced)."
        )
    return out


def _debug_observer(spec: TaskSpec, chosen, model, split: Split, encoder: TextEncoder, out: Path):
    import shutil

    from bertbridge.core.debugger.capture import Observer, Report, make_probe

    if out.exists():
        shutil.rmtree(out)  # an earlier bertbridge trial (checked in _check_debugger)
    probe = make_probe(split.features, split.examples, encoder, spec.debugger.examples, encoder.pad_id)
    session = chosen.debug_session(model, spec.debugger, probe, out)
    report = Report(
        trial=str(out), backend=chosen.name, num_layers=session.num_layers, num_heads=session.num_heads,
        tokens=probe.tokens, texts=probe.texts, tensors=session.tensor_names(),
    )
    return Observer(session, spec.debugger.steps, report, out)


def _run_fingerprint(spec: TaskSpec, backend_name: str, train_split: Split, validation: Optional[Split]) -> str:
    """Identifies a training run for resuming: the spec's training-relevant fields, the backend
    and the tokenized training data (not file names or times, which change when SageMaker
    re-downloads a channel or streams it through a pipe)."""
    import hashlib
    import json

    relevant = spec.to_dict()
    relevant.pop("output_dir", None)
    relevant.pop("distribution", None)  # a checkpoint resumes on any number of workers (same global batch)
    for key in ("checkpoint_dir", "checkpoint_interval", "log_interval"):
        relevant["training"].pop(key, None)
    for key in ("train", "validation", "test", "labels_file"):
        relevant["data"].pop(key, None)
    digest = hashlib.sha256(json.dumps([relevant, backend_name], sort_keys=True).encode("utf-8"))
    for split in (train_split, validation):  # validation drives best weights and early stopping
        if split is None:
            continue
        for ids in split.features.input_ids:
            digest.update(ids.tobytes())
        digest.update(np.ascontiguousarray(split.targets).tobytes())
    return digest.hexdigest()[:24]


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
    from bertbridge.core.data import tfrecord

    spec = load_spec(spec, overrides)
    if split not in ("train", "validation", "test"):
        raise SpecError(f"split {split!r}: choose train, validation or test.")
    path = getattr(spec.data, split)
    if path is None:
        raise SpecError(f"data.{split} is not set in the spec, so there is nothing to export.")
    if shards < 1:
        raise SpecError(f"shards must be >= 1, got {shards}.")
    out = Path(out_dir)
    others = sorted({p.name.split("-")[0] for p in out.glob("*.tfrecord")} - {split}) if out.is_dir() else []
    if others:
        raise SpecError(f"{out}: already holds shards of {', '.join(others)}; use one folder per split.")
    encoder = TextEncoder.from_pretrained(models().resolve(spec.model.name))
    multi = spec.task.multi_label
    train_examples = read_examples(spec.data.train, spec.data, multi_label=multi) if spec.data.train else None
    label_map = LabelMap.from_config(spec.data, train_examples)
    data = read_split(path, spec.data, encoder, label_map, max_length=spec.training.max_seq_length, multi_label=multi)
    for stale in out.glob(f"{split}-*-of-*.tfrecord") if out.is_dir() else []:
        stale.unlink()
    return tfrecord.write_split(
        out, split, data.features, data.targets, shards=shards, multi_label=multi,
        fixed_length=spec.training.max_seq_length if fixed_length else None, pad_id=encoder.pad_id,
        metadata={
            "task": spec.task.type, "labels": list(label_map.labels), "multi_label": multi,
            "text_pair": spec.data.text_pair_column is not None, "max_seq_length": spec.training.max_seq_length,
            "model": spec.model.name, "lowercase": encoder.lowercase, "tokenizer": encoder.fingerprint,
            "source": str(path),
        },
    )


def export(
    path: Union[str, os.PathLike],
    fmt: str,
    out_dir: Union[str, os.PathLike],
    *,
    backend: Optional[str] = None,
    **options: Any,
) -> Path:
    """Export a saved model to a serving format (``savedmodel``, ...). The backend is
    ``backend`` if given, else the one that trained the model if it writes ``fmt``,
    else any installed backend that does."""
    folder = Path(path)
    manifest = Manifest.read(folder)
    check_weights(folder)
    if manifest.task != "text_classification":
        raise NotSupportedError(f"{folder}: a {manifest.task} model; the export formats serve text_classification models. "
                                "Serve it with 'bertbridge serve' or the SageMaker serving functions instead.")
    if backend is not None:
        chosen = select_backend(backend, task=manifest.task)
    else:
        writers = [b for b in backends() if fmt in b.exports]
        writers.sort(key=lambda b: b.name != manifest.backend)
        if not writers:
            formats = sorted({f"{f} ({b.name})" for b in backends() for f in b.exports})
            raise NotSupportedError(f"invalid export format {fmt!r}; available: {', '.join(formats) or 'none'}.")
        installed = [b for b in writers if b.status().available]
        chosen = (installed or writers)[0]
        chosen.ensure_available()
    if fmt not in chosen.exports:
        raise NotSupportedError(f"backend {chosen.name!r} cannot export {fmt!r}; it writes: {', '.join(chosen.exports) or 'nothing'}.")
    return chosen.export(folder, fmt, Path(out_dir), **options)


def load(path: Union[str, os.PathLike], *, backend: Optional[str] = None, batch_size: int = 64) -> TextClassifier:
    """Open a saved model folder: a :class:`TextClassifier`, or a
    :class:`~bertbridge.core.tasks.qa.predictor.QuestionAnswerer` for a question-answering model. The backend
    is ``backend`` if given, else the one that trained it; any backend that supports the
    task can open any backend's artifact."""
    folder = Path(path)
    manifest = Manifest.read(folder)
    check_weights(folder)
    chosen = select_backend(backend, manifest.backend, task=manifest.task)
    if manifest.task == "question_answering":
        from bertbridge.core.tasks.qa.training import load_question_answering

        return load_question_answering(folder, manifest, chosen, batch_size)  # type: ignore[return-value]
    encoder = TextEncoder.from_pretrained(folder)
    setup = ModelSetup(
        num_labels=len(manifest.labels),
        multi_label=manifest.multi_label,
        id2label=dict(enumerate(manifest.labels)),
        seed=0,
    )
    model = chosen.load_model(folder, setup)
    clf = TextClassifier(model, encoder, manifest, batch_size=batch_size)
    clf.path = folder.resolve()
    return clf


def evaluate(path: Union[str, os.PathLike], data: Union[str, os.PathLike], *, backend: Optional[str] = None) -> dict[str, float]:
    """Metrics of a saved model on a labelled file read like its training data."""
    return load(path, backend=backend).evaluate(data)


def run_local(spec: SpecLike, **kwargs: Any):
    """Run the spec as a SageMaker script-mode job on this machine; see
    :func:`bertbridge.core.sagemaker.local.run_local` (returns a ``LocalRun``)."""
    from bertbridge.core.sagemaker.local import run_local as _run

    return _run(spec, **kwargs)


def list_backends():
    """Status of every registered backend (name, available, version, detail), sorted by name."""
    return [b.status() for b in backends()]
