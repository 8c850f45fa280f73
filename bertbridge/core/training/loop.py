"""The framework-neutral training loop.

Every backend trains through this loop, so the schedule, gradient
accumulation, logging cadence, evaluation and early stopping are identical
everywhere; the backend only runs :meth:`TrainableModel.accumulate` and
:meth:`TrainableModel.step`. :func:`fit` is the entry; :class:`_Trainer` holds
one run's state, one small method per duty.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from bertbridge.core.backend import TrainableModel
from bertbridge.core.distributed.collective import Collective, SingleProcess, shard
from bertbridge.core.io import checkpoints, progress
from bertbridge.core.spec import TrainingConfig
from bertbridge.core.text.batching import collate, train_batches
from bertbridge.core.text.tokenize import Encoded
from bertbridge.core.training.early_stopping import Monitor
from bertbridge.core.training.schedule import Schedule

LogFn = Callable[[Mapping[str, float], str, int, float], None]
EvaluateFn = Callable[[], dict[str, float]]


@dataclass
class TrainResult:
    steps: int
    epochs: float
    train_seconds: float
    train_examples: int
    stopped_early: bool
    best_metrics: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    """Validation metrics of the weights the model holds after :func:`fit` (best or last)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One entry per evaluation: ``step``, ``epoch`` and the validation metrics."""
    train_history: list[dict[str, float]] = field(default_factory=list)
    """One entry per ``train`` log line: ``step``, ``epoch``, ``loss`` (mean since the last line), ``learning_rate``."""

    @property
    def train_samples_per_s(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds > 0 else 0.0


@dataclass
class _Loop:
    """Where the loop is; saved in checkpoints so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    next_group: int = 0
    epoch_rng: dict = field(default_factory=dict)  # numpy RNG state at the start of ``epoch``
    seen: int = 0
    train_seconds: float = 0.0
    best: Optional[float] = None
    stale: int = 0
    last_eval_step: int = -1
    best_metrics: dict = field(default_factory=dict)
    final_metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    train_history: list = field(default_factory=list)


@dataclass
class _Window:
    """Training numbers since the last ``train`` log line."""

    loss: float = 0.0
    count: int = 0
    examples: int = 0
    seconds: float = 0.0


def fit(
    model: TrainableModel,
    features: Encoded,
    targets: np.ndarray,
    cfg: TrainingConfig,
    *,
    evaluate: Optional[EvaluateFn],
    log: LogFn,
    monitor: Monitor = Monitor(),
    pad_id: int = 0,
    fingerprint: str = "",
    observer=None,
    collective: Optional[Collective] = None,
) -> TrainResult:
    """Fine-tune ``model`` for ``cfg.epochs`` epochs; ``evaluate`` (if any) returns validation
    metrics, of which ``monitor`` drives best weights and early stopping.

    With ``cfg.checkpoint_dir`` set, a checkpoint is written every ``cfg.checkpoint_interval``
    optimizer steps (0: after each epoch), and a run that finds one there (from the same
    ``fingerprint``) resumes from it: same batches, same RNG streams, same result.
    ``observer`` (a :class:`bertbridge.core.debugger.capture.Observer`) is told about steps and
    evaluations, for debugger capture.

    With a ``collective`` of several workers (data-parallel training; the model has joined
    it with :meth:`~bertbridge.core.backend.TrainableModel.distribute`) every worker runs
    this loop over the same batches and takes its :func:`~bertbridge.core.distributed.collective.shard`
    of each; only rank 0 evaluates (its early-stopping decision is shared), logs, shows
    progress and writes checkpoints. Every worker must be given the same ``evaluate``-or-None.
    """
    trainer = _Trainer(model, features, targets, cfg, evaluate, log, monitor, pad_id, fingerprint, observer, collective)
    return trainer.run()


def _silent(*args) -> None:
    """The log of ranks other than 0 (rank 0 logs for the job)."""


class _Trainer:
    def __init__(self, model, features, targets, cfg, evaluate, log, monitor, pad_id, fingerprint, observer, collective):
        self.model, self.features, self.targets, self.cfg = model, features, targets, cfg
        self.evaluate, self.monitor, self.pad_id, self.fingerprint, self.observer = evaluate, monitor, pad_id, fingerprint, observer
        self.world = collective or SingleProcess()
        self.log = log if self.world.is_main else _silent
        self.keep_best = evaluate is not None and cfg.restore_best
        self.schedule = Schedule.for_run(len(features), cfg)
        self.rng = np.random.default_rng(cfg.seed)
        self.state = _Loop(epoch_rng=self.rng.bit_generator.state)
        self.best_snapshot: Optional[dict] = None
        self.window = _Window()
        self.bar = None

    # -- the run ----------------------------------------------------------------------
    def run(self) -> TrainResult:
        self.resume()
        self.bar = progress.bar(self.schedule.total_steps, "training", unit="step", disable=not self.world.is_main)
        self.bar.update(self.state.step)
        if self.observer is not None:
            self.observer.before_training(self.state.step)
        try:
            stopped = self.train_epochs()
            if self.evaluate is not None and self.state.last_eval_step != self.state.step:
                self.run_eval()  # the last steps were not evaluated (eval_interval does not divide them)
        finally:
            self.bar.close()
        return self.result(stopped)

    def train_epochs(self) -> bool:
        """Every remaining epoch; True when early stopping ended the run."""
        s, cfg = self.state, self.cfg
        while s.epoch < cfg.epochs:
            if self.train_epoch():
                return True
            stopped = self.run_eval() if self.evaluate is not None and not cfg.eval_interval else False
            s.epoch, s.next_group, s.epoch_rng = s.epoch + 1, 0, self.rng.bit_generator.state
            if stopped:
                return True
            if cfg.checkpoint_dir and not cfg.checkpoint_interval:
                self.checkpoint()
        return False

    def train_epoch(self) -> bool:
        """The rest of the current epoch; True when early stopping fired inside it."""
        s, cfg = self.state, self.cfg
        accum = cfg.gradient_accumulation_steps
        self.rng.bit_generator.state = s.epoch_rng
        batches = train_batches(self.features.lengths, cfg.batch_size, self.rng, cfg.group_by_length)
        for start in range(s.next_group, len(batches), accum):
            self.optimizer_step(batches[start : start + accum])
            s.next_group = start + accum
            self.maybe_log()
            if self.evaluate is not None and cfg.eval_interval and s.step % cfg.eval_interval == 0 and self.run_eval():
                return True
            if cfg.checkpoint_dir and cfg.checkpoint_interval and s.step % cfg.checkpoint_interval == 0:
                self.checkpoint()
        return False

    # -- one optimizer step -------------------------------------------------------------
    def optimizer_step(self, group: list) -> None:
        """Accumulate this worker's share of every batch in ``group``, then one optimizer step."""
        tick = time.perf_counter()
        group_size = sum(len(b) for b in group)
        parts = self.micro_batches(group, group_size)
        for i, (index, weight, width) in enumerate(parts):
            with self.model.no_sync() if i < len(parts) - 1 else contextlib.nullcontext():
                loss = self.model.accumulate(collate(self.features, index, self.targets, self.pad_id, width), weight)
            if weight:
                self.window.loss += loss * len(index)
                self.window.count += len(index)
        s = self.state
        self.model.step(self.schedule.learning_rate(s.step))
        s.step += 1
        s.seen += group_size
        elapsed = time.perf_counter() - tick
        s.train_seconds += elapsed
        self.window.examples += group_size
        self.window.seconds += elapsed
        self.bar.update(1)
        if self.observer is not None:
            self.observer.after_step(s.step)

    def micro_batches(self, group: list, group_size: int) -> list[tuple[np.ndarray, float, Optional[int]]]:
        """``(index, loss weight, padded width)`` of this worker's share of each batch. A share is padded
        as the whole batch would be, so that losses that see padding (the span head's softmax over all
        positions) match single-process training."""
        parts = [(local, len(local) / group_size, int(self.features.lengths[b].max()))
                 for b, local in ((b, shard(b, self.world)) for b in group) if len(local)]
        if not parts:  # fewer examples than workers: join the gradient exchange adding nothing
            parts = [(group[0][:1], 0.0, None)]
        return parts

    def maybe_log(self) -> None:
        s, w = self.state, self.window
        if s.step % self.cfg.log_interval and s.step != self.schedule.total_steps:
            return
        if self.world.world_size > 1:
            w.loss, w.count = self.world.all_reduce_sum([w.loss, w.count])
        metrics = {
            "train_loss": w.loss / max(1, w.count),
            "learning_rate": self.schedule.learning_rate(s.step),
            "train_samples_per_s": w.examples / w.seconds if w.seconds > 0 else 0.0,
        }
        epoch = self.schedule.epoch(s.step)
        self.log(metrics, "train", s.step, epoch)
        s.train_history.append({"step": s.step, "epoch": epoch, "loss": metrics["train_loss"],
                                "learning_rate": metrics["learning_rate"]})
        self.window = _Window()

    # -- evaluation and early stopping ----------------------------------------------------
    def run_eval(self) -> bool:
        """Evaluate (rank 0), log, track the best; True when early stopping fires (on every rank)."""
        self.state.last_eval_step = self.state.step
        if not self.world.is_main:
            return self.world.broadcast_flag(False)
        stop = self.evaluate_and_track()
        return self.world.broadcast_flag(stop) if self.world.world_size > 1 else stop

    def evaluate_and_track(self) -> bool:
        s, cfg = self.state, self.cfg
        metrics = self.evaluate()  # type: ignore[misc]
        s.final_metrics = dict(metrics)
        epoch = self.schedule.epoch(s.step)
        self.log({f"eval_{k}": v for k, v in metrics.items()}, "eval", s.step, epoch)
        if self.observer is not None:
            self.observer.after_eval(s.step, metrics)
        s.history.append({"step": s.step, "epoch": epoch, **metrics})
        value = metrics[self.monitor.name]
        if self.monitor.improved(value, s.best, cfg.early_stopping.min_delta):
            s.best, s.stale, s.best_metrics = value, 0, dict(metrics)
            if self.keep_best:
                self.best_snapshot = self.model.snapshot()
            return False
        s.stale += 1
        return bool(cfg.early_stopping.patience) and s.stale >= cfg.early_stopping.patience

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self) -> None:
        if not self.world.is_main:
            return
        arrays = self.model.training_state()
        if self.best_snapshot is not None:
            arrays.update({f"best.{k}": v for k, v in self.best_snapshot.items()})
        state = {**self.state.__dict__, "fingerprint": self.fingerprint}
        checkpoints.save(Path(self.cfg.checkpoint_dir), self.state.step, arrays, state)  # type: ignore[arg-type]

    def resume(self) -> None:
        """Continue from the newest checkpoint in ``checkpoint_dir``, if there is one."""
        found = checkpoints.latest(Path(self.cfg.checkpoint_dir)) if self.cfg.checkpoint_dir else None
        if found is None:
            return
        arrays, saved = checkpoints.load(found)
        checkpoints.check_fingerprint(found, saved, self.fingerprint)
        self.model.load_training_state({k: v for k, v in arrays.items() if not k.startswith("best.")})
        self.best_snapshot = {k[len("best."):]: v for k, v in arrays.items() if k.startswith("best.")} or None
        self.state = _Loop(**{k: v for k, v in saved.items() if k in _Loop.__dataclass_fields__})
        self.log({"resumed_from_step": self.state.step}, "train", self.state.step, self.schedule.epoch(self.state.step))

    def result(self, stopped: bool) -> TrainResult:
        s = self.state
        final = dict(s.final_metrics)
        if self.keep_best and self.best_snapshot is not None:  # rank 0 only: it saves the model
            self.model.restore(self.best_snapshot)
            final = dict(s.best_metrics)
        return TrainResult(
            steps=s.step, epochs=self.schedule.epoch(s.step), train_seconds=s.train_seconds, train_examples=s.seen,
            stopped_early=stopped, best_metrics=s.best_metrics, final_metrics=final, history=s.history,
            train_history=s.train_history,
        )
