"""Experiment tracking, built in and switched on by the spec's ``tracking`` section: TensorBoard event
files (written with ``tensorboardX``, so no TensorFlow in the process) and MLflow runs.

A plugin like any other: it implements ``bertbridge_run_started``, ``bertbridge_log_metrics`` and
``bertbridge_run_finished`` (see :mod:`bertbridge.core.hookspecs`) and does nothing for a run whose
spec tracks nothing. Its packages are optional (``pip install 'bertbridge[tracking]'``) and imported
only when a run asks for them.

Example spec section::

    tracking:
      tensorboard: runs          # event files in runs/<output folder name>-<time>-<id>/
      mlflow: true               # params = the resolved spec, metrics per step, the model folder as artifacts
      mlflow_uri: null           # default: $MLFLOW_TRACKING_URI, else MLflow's own (sqlite:///mlflow.db here)
      experiment: bertbridge
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import math
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

from bertbridge.core.errors import NotSupportedError
from bertbridge.core.hookspecs import hookimpl
from bertbridge.core.reports.record import redact_credentials
from bertbridge.core.spec import TaskSpec

INSTALL = "pip install 'bertbridge[tracking]'"
MLFLOW_PARAM_LIMIT = 6000  # characters MLflow keeps of a parameter value
MLFLOW_BATCH = 100  # parameters per log_batch call


class TrackingPlugin:
    """The sinks of the run in progress, per thread (context): runs in two threads of one process
    (to different output folders) keep their own."""

    def __init__(self) -> None:
        self._sinks: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("bertbridge_tracking", default=())

    @hookimpl
    def bertbridge_run_started(self, spec: TaskSpec, backend: str) -> None:
        cfg = spec.tracking
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{Path(spec.output_dir).name}-{stamp}-{uuid.uuid4().hex[:4]}"
        sinks: list[Any] = []
        try:
            if cfg.tensorboard:
                sinks.append(TensorBoardSink(Path(cfg.tensorboard) / name))
            if cfg.mlflow:
                sinks.append(MlflowSink(cfg.mlflow_uri, cfg.experiment, name, spec, backend))
        except BaseException:
            _close_all(sinks, None, "FAILED")
            raise
        self._sinks.set(tuple(sinks))

    @hookimpl
    def bertbridge_log_metrics(self, metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        for sink in self._sinks.get():
            _quietly(sink, "log", finite, step)

    @hookimpl
    def bertbridge_run_finished(self, spec: TaskSpec, model_dir: Optional[Path], metrics: Mapping[str, float],
                                error: Optional[BaseException]) -> None:
        sinks = self._sinks.get()
        self._sinks.set(())
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        _close_all(sinks, model_dir, status)


def _close_all(sinks, model_dir: Optional[Path], status: str) -> None:
    for sink in sinks:
        _quietly(sink, "close", model_dir, status)


def _quietly(sink, method: str, *args) -> None:
    """Tracking reports on the run; a tracking server that fails mid-run warns, it does not stop training."""
    try:
        getattr(sink, method)(*args)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{type(sink).__name__}.{method} failed ({type(exc).__name__}: {exc}); training goes on.",
                      RuntimeWarning, stacklevel=2)


class TensorBoardSink:
    """One TensorBoard run folder; scalars keep the log lines' names (``train_loss``, ``eval_accuracy``)."""

    def __init__(self, logdir: Path) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise NotSupportedError(f"tracking.tensorboard needs the tensorboardX package, which is not installed: {INSTALL}"
                                    " (or pip install tensorboardX), or remove tracking.tensorboard.") from None
        logdir.mkdir(parents=True, exist_ok=True)
        self.logdir = logdir
        self._writer = SummaryWriter(logdir=str(logdir))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, global_step=step)

    def close(self, model_dir: Optional[Path], status: str) -> None:
        self._writer.close()


class MlflowSink:
    """One MLflow run through ``MlflowClient`` (the process's global MLflow state is left alone)."""

    def __init__(self, uri: Optional[str], experiment: str, name: str, spec: TaskSpec, backend: str) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Param
        except ImportError:
            raise NotSupportedError(f"tracking.mlflow needs the mlflow package, which is not installed: {INSTALL}"
                                    " (or pip install mlflow), or set tracking.mlflow: false.") from None
        self._client = MlflowClient(tracking_uri=uri or os.environ.get("MLFLOW_TRACKING_URI") or None)
        found = self._client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self._client.create_experiment(experiment)
        run = self._client.create_run(experiment_id, run_name=name, tags={"bertbridge.backend": backend,
                                                                          "bertbridge.task": spec.task.type})
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:MLFLOW_PARAM_LIMIT]) for k, v in flatten(redact_credentials(spec.to_dict())).items()]
        try:
            for i in range(0, len(params), MLFLOW_BATCH):
                self._client.log_batch(self.run_id, params=params[i:i + MLFLOW_BATCH])
        except BaseException:
            self._client.set_terminated(self.run_id, status="FAILED")
            raise

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if metrics:
            self._client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self, model_dir: Optional[Path], status: str) -> None:
        try:
            if model_dir is not None:
                self._client.log_artifacts(self.run_id, str(model_dir), artifact_path="model")
        finally:
            self._client.set_terminated(self.run_id, status=status)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"epochs": 3}}`` -> ``{"training.epochs": 3}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
