"""The framework-neutral training loop.

Every backend trains through this loop, so the schedule, gradient
accumulation, logging cadence, evaluation and early stopping are identical
everywhere; the backend only runs :meth:`TrainableModel.accumulate` and
:meth:`TrainableModel.step`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from . import progress
from .backend import TrainableModel
from .batching import collate, train_batches
from .errors import SpecError
from .spec import TrainingConfig
from .tokenize import Encoded

MINIMIZED = ("loss", "hamming_loss")
SINGLE_LABEL_MONITORS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc", "loss")
MULTI_LABEL_MONITORS = ("subset_accuracy", "micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss", "loss")

LogFn = Callable[[Mapping[str, float], str, int, float], None]


def linear_schedule(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then linear decay to 0
    (the same curve as Hugging Face's ``get_linear_schedule_with_warmup``)."""
    if step < warmup_steps:
        return peak * step / max(1, warmup_steps)
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def monitor_metric(cfg: TrainingConfig, multi_label: bool, has_validation: bool) -> str:
    """The early-stopping metric, checked before any training happens."""
    allowed = MULTI_LABEL_MONITORS if multi_label else SINGLE_LABEL_MONITORS
    name = cfg.early_stopping.metric or ("micro_f1" if multi_label else "accuracy")
    if name not in allowed:
        raise SpecError(f"training.early_stopping.metric is {name!r}; for this task use one of: {', '.join(allowed)}.")
    if cfg.early_stopping.patience and not has_validation:
        raise SpecError("training.early_stopping.patience is set but data.validation is not: early stopping needs validation data.")
    return name


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

    @property
    def train_samples_per_s(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds > 0 else 0.0


def fit(
    model: TrainableModel,
    features: Encoded,
    targets: np.ndarray,
    cfg: TrainingConfig,
    *,
    multi_label: bool,
    evaluate: Optional[Callable[[], dict[str, float]]],
    log: LogFn,
    pad_id: int = 0,
) -> TrainResult:
    """Fine-tune ``model`` for ``cfg.epochs`` epochs; ``evaluate`` (if any) returns validation metrics."""
    metric = monitor_metric(cfg, multi_label, evaluate is not None)
    minimize = metric in MINIMIZED
    patience = cfg.early_stopping.patience
    keep_best = evaluate is not None and cfg.restore_best
    rng = np.random.default_rng(cfg.seed)
    accum = cfg.gradient_accumulation_steps
    micro_per_epoch = math.ceil(len(features) / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(round(total_steps * cfg.warmup_ratio))

    step, seen, train_seconds = 0, 0, 0.0
    best: Optional[float] = None
    best_snapshot = None
    stale = 0
    stopped = False
    result = TrainResult(0, 0.0, 0.0, 0, False)
    window_loss, window_examples, window_seconds = 0.0, 0, 0.0

    last_eval_step = -1

    def run_eval() -> bool:
        """Evaluate, log, track the best; True when early stopping fires."""
        nonlocal best, best_snapshot, stale, last_eval_step
        last_eval_step = step
        metrics = evaluate()  # type: ignore[misc]
        result.final_metrics = dict(metrics)
        epoch_now = step / steps_per_epoch
        log({f"eval_{k}": v for k, v in metrics.items()}, "eval", step, epoch_now)
        result.history.append({"step": step, "epoch": epoch_now, **metrics})
        value = metrics[metric]
        improved = best is None or (value < best - cfg.early_stopping.min_delta if minimize else value > best + cfg.early_stopping.min_delta)
        if improved:
            best, stale = value, 0
            result.best_metrics = dict(metrics)
            if keep_best:
                best_snapshot = model.snapshot()
            return False
        stale += 1
        return bool(patience) and stale >= patience

    bar = progress.bar(total_steps, "training", unit="step")
    try:
        for epoch in range(cfg.epochs):
            batches = train_batches(features.lengths, cfg.batch_size, rng, cfg.group_by_length)
            for start in range(0, len(batches), accum):
                tick = time.perf_counter()
                group = batches[start : start + accum]
                group_size = sum(len(b) for b in group)
                for index in group:
                    batch = collate(features, index, targets, pad_id)
                    loss = model.accumulate(batch, len(index) / group_size)
                    window_loss += loss * len(index)
                model.step(linear_schedule(step, total_steps, warmup, cfg.learning_rate))
                step += 1
                seen += group_size
                window_examples += group_size
                elapsed = time.perf_counter() - tick
                train_seconds += elapsed
                window_seconds += elapsed
                bar.update(1)
                if step % cfg.log_interval == 0 or step == total_steps:
                    log(
                        {
                            "train_loss": window_loss / max(1, window_examples),
                            "learning_rate": linear_schedule(step, total_steps, warmup, cfg.learning_rate),
                            "train_samples_per_s": window_examples / window_seconds if window_seconds > 0 else 0.0,
                        },
                        "train",
                        step,
                        step / steps_per_epoch,
                    )
                    window_loss, window_examples, window_seconds = 0.0, 0, 0.0
                if evaluate is not None and cfg.eval_interval and step % cfg.eval_interval == 0:
                    if run_eval():
                        stopped = True
                        break
            if stopped:
                break
            if evaluate is not None and not cfg.eval_interval:
                if run_eval():
                    stopped = True
                    break
        if evaluate is not None and last_eval_step != step:
            run_eval()  # the last steps were not evaluated (eval_interval does not divide them)
    finally:
        bar.close()
    if keep_best and best_snapshot is not None:
        model.restore(best_snapshot)
        result.final_metrics = dict(result.best_metrics)
    result.steps, result.epochs = step, step / steps_per_epoch
    result.train_seconds, result.train_examples, result.stopped_early = train_seconds, seen, stopped
    return result
