"""One training run, the same for every task: check, read, build, train, test, save.

:func:`run_training` is what :func:`bertbridge.train` does once it knows the task, the
backend, the output folder and this process's data-parallel role. Everything that can be
checked cheaply (spec, model folder, every data file) is checked before the backend
builds a model, so a bad row fails in seconds, before any framework import.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from bertbridge.core.debugger.capture import REPORT_NAME, Observer, Report, make_probe
from bertbridge.core.distributed import data_parallel
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.io.artifacts import check_weights
from bertbridge.core.plugins.registry import backends, models, plugin_manager, tasks
from bertbridge.core.reports.record import RunRecord, redact_credentials
from bertbridge.core.spec import TaskSpec
from bertbridge.core.task import Predictor, Task, TaskData
from bertbridge.core.text.tokenize import TextEncoder
from bertbridge.core.training.early_stopping import monitor_metric
from bertbridge.core.training.loop import TrainResult, fit


def log_metrics(metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
    """Hand metrics to every ``bertbridge_log_metrics`` plugin."""
    plugin_manager().hook.bertbridge_log_metrics(metrics=dict(metrics), stage=stage, step=step, epoch=epoch)


def run_training(task: Task, spec: TaskSpec, backend, target: Path, role: str = "single") -> Optional[Predictor]:
    """Fine-tune ``spec``'s model for ``task`` on ``backend`` and save it to ``target``.

    ``role``: see :func:`bertbridge.core.distributed.data_parallel.role`; a data-parallel
    worker other than rank 0 returns None. The predictor returned has ``metrics`` (validation,
    then ``test_*``), ``path`` and ``training_result`` (the loop's :class:`TrainResult`).
    """
    debug_dir = debugger_folder(task, spec, backend, target)
    task.check_spec(spec)
    if spec.data.train is None:
        raise SpecError(f"data.train is not set: give the path of {task.train_hint}.")
    monitor = monitor_metric(spec.training, task.monitors(spec), task.minimized, spec.data.validation is not None,
                             task.default_monitor(spec))
    model_dir = models().resolve(spec.model.name)
    check_weights(model_dir)
    encoder = TextEncoder.from_pretrained(model_dir)
    encoder.check_max_length(spec.training.max_seq_length)
    data = task.read_data(spec, encoder, backend.name)
    data.manifest = _with_validation_file(data.manifest, spec)
    t = spec.training
    setup = replace(data.setup, head=task.head, seed=t.seed, mixed_precision=t.mixed_precision,
                    weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm)

    model, collective = data_parallel.create_model(backend, model_dir, setup, spec, role)
    with announced(spec, backend.name, collective is None or collective.is_main) as outcome:
        predictor = train_and_save(task, spec, backend, target, data, model, collective, encoder, monitor, debug_dir)
        if predictor is not None:
            outcome.update(model_dir=predictor.path, metrics=dict(predictor.manifest.metrics))
    return predictor


def train_and_save(task: Task, spec: TaskSpec, backend, target: Path, data: TaskData, model, collective,
                   encoder: TextEncoder, monitor, debug_dir: Optional[Path]) -> Optional[Predictor]:
    """Train the built model, then test and save on rank 0 (other ranks return None)."""
    predictor = task.predictor(model, encoder, data.manifest, batch_size=spec.training.eval_batch_size)
    evaluate = (lambda: predictor.evaluate_split(data.validation, show_progress=False)) if data.validation is not None else None
    observer = debug_observer(spec, backend, model, data, encoder, debug_dir) if debug_dir else None
    result = fit(
        model, data.train.features, data.train.targets, spec.training, evaluate=evaluate, log=log_metrics,
        monitor=monitor, pad_id=encoder.pad_id, fingerprint=run_fingerprint(spec, backend.name, data),
        observer=observer, collective=collective,
    )
    if collective is not None and not collective.is_main:
        collective.close()
        return None
    if observer is not None:
        predictor.debug_report = observer.close()  # type: ignore[attr-defined]
        verdicts = {f"debugger_rule_{k}_triggered": float(bool(v.get("triggered"))) for k, v in predictor.debug_report.rules.items()}  # type: ignore[attr-defined]
        log_metrics(verdicts, "debugger", result.steps, result.epochs)
    predictor.run = RunRecord(spec=redact_credentials(spec.to_dict()), metric=monitor.name,  # type: ignore[attr-defined]
                              train=result.train_history, evaluations=result.history)
    finish(predictor, data, result, target, collective)
    return predictor


@contextlib.contextmanager
def announced(spec: TaskSpec, backend_name: str, main: bool) -> Iterator[dict[str, Any]]:
    """Fire ``bertbridge_run_started`` now and ``bertbridge_run_finished`` at the end (with the
    error, if any) on the process that logs and saves; yields the outcome to fill in
    (``model_dir``, ``metrics``)."""
    outcome: dict[str, Any] = {"model_dir": None, "metrics": {}}
    if not main:
        yield outcome
        return
    hook = plugin_manager().hook
    try:
        hook.bertbridge_run_started(spec=spec, backend=backend_name)
        yield outcome
    except BaseException as exc:  # the plugins that started (before one raised, too) hear the end
        _failed(hook, spec, exc)
        raise
    hook.bertbridge_run_finished(spec=spec, error=None, **outcome)


def _failed(hook, spec: TaskSpec, error: BaseException) -> None:
    """``bertbridge_run_finished`` for a failed run; a plugin failing there must not hide ``error``."""
    try:
        hook.bertbridge_run_finished(spec=spec, model_dir=None, metrics={}, error=error)
    except Exception as exc:  # noqa: BLE001
        import warnings

        warnings.warn(f"a bertbridge_run_finished plugin failed ({type(exc).__name__}: {exc}) while the run was "
                      f"failing with {type(error).__name__}: {error}", RuntimeWarning, stacklevel=2)


def finish(predictor: Predictor, data: TaskData, result: TrainResult, target: Path, collective) -> None:
    """The end of every run: test pass, metrics, save (rank 0), then leave the job."""
    metrics: dict[str, Any] = dict(result.final_metrics)
    metrics["train_samples_per_s"] = result.train_samples_per_s
    metrics["train_seconds"] = result.train_seconds
    metrics.update(data.metrics)
    if result.final_metrics:
        log_metrics({f"saved_{k}": v for k, v in result.final_metrics.items()}, "saved", result.steps, result.epochs)
    if data.test is not None:
        test = {f"test_{k}": v for k, v in predictor.evaluate_split(data.test).items()}
        log_metrics(test, "test", result.steps, result.epochs)
        metrics.update(test)
    metrics.update(data_parallel.worker_summary(collective))
    predictor.save(target, metrics=metrics)
    if collective is not None:
        collective.close()
    predictor.training_result = result  # type: ignore[attr-defined]


def run_fingerprint(spec: TaskSpec, backend_name: str, data: TaskData) -> str:
    """Identifies a training run for resuming: the spec's training-relevant fields, the backend
    and the tokenized training and validation data (not file names or times, which change when
    SageMaker re-downloads a channel or streams it through a pipe)."""
    relevant = spec.to_dict()
    relevant.pop("output_dir", None)
    relevant.pop("distribution", None)  # a checkpoint resumes on any number of workers (same global batch)
    relevant.pop("tracking", None)  # where metrics are sent does not change the run
    relevant.pop("tuning", None)  # a trial's values are already in the fields they set
    if relevant["task"].get("long_text") is None:  # runs from before the field existed resume
        relevant["task"].pop("long_text", None)
    for key in ("checkpoint_dir", "checkpoint_interval", "log_interval"):
        relevant["training"].pop(key, None)
    for key in ("train", "validation", "test", "labels_file"):
        relevant["data"].pop(key, None)
    digest = hashlib.sha256(json.dumps([relevant, backend_name], sort_keys=True).encode("utf-8"))
    for split in (data.train, data.validation):  # validation drives best weights and early stopping
        if split is None:
            continue
        for ids in split.features.input_ids:
            digest.update(ids.tobytes())
        digest.update(np.ascontiguousarray(split.targets).tobytes())
    return digest.hexdigest()[:24]


# -- SageMaker Debugger capture --------------------------------------------------------------
def debugger_folder(task: Task, spec: TaskSpec, backend, target: Path) -> Optional[Path]:
    """The trial folder of a debugger run (checked before any work), or None."""
    if not spec.debugger.attention:
        return None
    if not task.debugger:
        able = ", ".join(t.name for t in tasks() if t.debugger) or "no installed task"
        raise NotSupportedError(f"debugger.attention records {able} runs only; set debugger.attention: false.")
    if not backend.debugger:
        able = ", ".join(b.name for b in backends() if b.debugger) or "none installed"
        raise NotSupportedError(
            f"debugger.attention is set, but backend {backend.name!r} has no SageMaker Debugger capture; "
            f"backends with it: {able}. Set backend to one of them, or debugger.attention: false."
        )
    out = Path(spec.debugger.out_dir) if spec.debugger.out_dir else target.parent / f"{target.name}-debug"
    if out.exists() and any(out.iterdir()) and not (out / REPORT_NAME).exists():
        raise SpecError(
            f"debugger.out_dir {out} is a non-empty folder that is not a bertbridge trial; "
            "choose an empty or new folder (an earlier bertbridge trial there is replaced)."
        )
    return out


def debug_observer(spec: TaskSpec, backend, model, data: TaskData, encoder: TextEncoder, out: Path) -> Observer:
    if out.exists():
        shutil.rmtree(out)  # an earlier bertbridge trial (checked in debugger_folder)
    split: Any = data.validation or data.train
    probe = make_probe(split.features, split.examples, encoder, spec.debugger.examples, encoder.pad_id)
    session = backend.debug_session(model, spec.debugger, probe, out)
    report = Report(
        trial=str(out), backend=backend.name, num_layers=session.num_layers, num_heads=session.num_heads,
        tokens=probe.tokens, texts=probe.texts, tensors=session.tensor_names(),
    )
    return Observer(session, spec.debugger.steps, report, out)


def _with_validation_file(manifest, spec: TaskSpec):
    """Record where the validation data was (the default data a quantized export is checked on)."""
    if spec.data.validation is None or not Path(spec.data.validation).is_file():
        return manifest
    return replace(manifest, data={**manifest.data, "validation_file": str(Path(spec.data.validation).resolve())})
