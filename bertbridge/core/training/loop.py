"""The framework-neutral training loop.

Every backend trains through this loop, so the schedule, gradient
accumulation, logging cadence, evaluation and early stopping are identical
everywhere; the backend only runs :meth:`TrainableModel.accumulate` and
:meth:`TrainableModel.step`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from bertbridge.core.backend import TrainableModel
from bertbridge.core.distributed.collective import Collective, SingleProcess, shard
from bertbridge.core.errors import SpecError
from bertbridge.core.io import progress
from bertbridge.core.spec import TrainingConfig
from bertbridge.core.text.batching import collate, train_batches
from bertbridge.core.text.tokenize import Encoded

MINIMIZED = ("loss", "hamming_loss")
SINGLE_LABEL_MONITORS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc", "loss")
MULTI_LABEL_MONITORS = ("subset_accuracy", "micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss", "loss")
QA_MONITORS = ("f1", "exact", "HasAns_f1", "loss")

LogFn = Callable[[Mapping[str, float], str, int, float], None]


def linear_schedule(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then linear decay to 0
    (the same curve as Hugging Face's ``get_linear_schedule_with_warmup``)."""
    if step < warmup_steps:
        return peak * step / max(1, warmup_steps)
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def monitor_metric(cfg: TrainingConfig, multi_label: bool, has_validation: bool, task: str = "text_classification") -> str:
    """The early-stopping metric, checked before any training happens."""
    if task == "question_answering":
        allowed, default = QA_MONITORS, "f1"
    else:
        allowed, default = (MULTI_LABEL_MONITORS, "micro_f1") if multi_label else (SINGLE_LABEL_MONITORS, "accuracy")
    name = cfg.early_stopping.metric or default
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
    fingerprint: str = "",
    observer=None,
    task: str = "text_classification",
    collective: Optional[Collective] = None,
) -> TrainResult:
    """Fine-tune ``model`` for ``cfg.epochs`` epochs; ``evaluate`` (if any) returns validation metrics.

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
    from bertbridge.core.io import checkpoints

    world = collective or SingleProcess()
    main = world.is_main
    if not main:
        log = lambda *args: None  # noqa: E731 - rank 0 logs for the job
    metric = monitor_metric(cfg, multi_label, evaluate is not None, task)
    minimize = metric in MINIMIZED
    patience = cfg.early_stopping.patience
    keep_best = evaluate is not None and cfg.restore_best
    rng = np.random.default_rng(cfg.seed)
    accum = cfg.gradient_accumulation_steps
    micro_per_epoch = math.ceil(len(features) / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(round(total_steps * cfg.warmup_ratio))

    loop = _Loop(epoch_rng=rng.bit_generator.state)
    best_snapshot: Optional[dict] = None
    resumed_from = checkpoints.latest(Path(cfg.checkpoint_dir)) if cfg.checkpoint_dir else None
    if resumed_from is not None:
        arrays, saved = checkpoints.load(resumed_from)
        checkpoints.check_fingerprint(resumed_from, saved, fingerprint)
        model.load_training_state({k: v for k, v in arrays.items() if not k.startswith("best.")})
        best_arrays = {k[len("best."):]: v for k, v in arrays.items() if k.startswith("best.")}
        best_snapshot = best_arrays or None
        loop = _Loop(**{k: v for k, v in saved.items() if k in _Loop.__dataclass_fields__})
        log({"resumed_from_step": loop.step}, "train", loop.step, loop.step / steps_per_epoch)
    result = TrainResult(0, 0.0, 0.0, 0, False)
    stopped = False
    window_loss, window_count, window_examples, window_seconds = 0.0, 0, 0, 0.0

    def run_eval() -> bool:
        """Evaluate, log, track the best; True when early stopping fires."""
        loop.last_eval_step = loop.step
        if not main:
            return world.broadcast_flag(False)
        stop = evaluate_and_track()
        return world.broadcast_flag(stop) if world.world_size > 1 else stop

    def evaluate_and_track() -> bool:
        nonlocal best_snapshot
        metrics = evaluate()  # type: ignore[misc]
        loop.final_metrics = dict(metrics)
        epoch_now = loop.step / steps_per_epoch
        log({f"eval_{k}": v for k, v in metrics.items()}, "eval", loop.step, epoch_now)
        if observer is not None:
            observer.after_eval(loop.step, metrics)
        loop.history.append({"step": loop.step, "epoch": epoch_now, **metrics})
        value = metrics[metric]
        delta = cfg.early_stopping.min_delta
        if loop.best is None or (value < loop.best - delta if minimize else value > loop.best + delta):
            loop.best, loop.stale = value, 0
            loop.best_metrics = dict(metrics)
            if keep_best:
                best_snapshot = model.snapshot()
            return False
        loop.stale += 1
        return bool(patience) and loop.stale >= patience

    def checkpoint() -> None:
        if not main:
            return
        arrays = model.training_state()
        if best_snapshot is not None:
            arrays.update({f"best.{k}": v for k, v in best_snapshot.items()})
        state = {**loop.__dict__, "fingerprint": fingerprint}
        checkpoints.save(Path(cfg.checkpoint_dir), loop.step, arrays, state)  # type: ignore[arg-type]

    bar = progress.bar(total_steps, "training", unit="step", disable=not main)
    bar.update(loop.step)
    if observer is not None:
        observer.before_training(loop.step)
    try:
        while loop.epoch < cfg.epochs and not stopped:
            rng.bit_generator.state = loop.epoch_rng
            batches = train_batches(features.lengths, cfg.batch_size, rng, cfg.group_by_length)
            for start in range(loop.next_group, len(batches), accum):
                tick = time.perf_counter()
                group = batches[start : start + accum]
                group_size = sum(len(b) for b in group)
                # A worker's share of each batch is padded as the whole batch would be, so that losses that
                # see padding (the span head's softmax over all positions) match single-process training.
                parts = [(local, len(local) / group_size, int(features.lengths[b].max()))
                         for b, local in ((b, shard(b, world)) for b in group) if len(local)]
                if not parts:  # fewer examples than workers: join the gradient exchange adding nothing
                    parts = [(group[0][:1], 0.0, None)]
                for i, (index, weight, width) in enumerate(parts):
                    with model.no_sync() if i < len(parts) - 1 else contextlib.nullcontext():
                        loss = model.accumulate(collate(features, index, targets, pad_id, width), weight)
                    if weight:
                        window_loss += loss * len(index)
                        window_count += len(index)
                model.step(linear_schedule(loop.step, total_steps, warmup, cfg.learning_rate))
                loop.step += 1
                loop.next_group = start + accum
                loop.seen += group_size
                window_examples += group_size
                elapsed = time.perf_counter() - tick
                loop.train_seconds += elapsed
                window_seconds += elapsed
                bar.update(1)
                if observer is not None:
                    observer.after_step(loop.step)
                if loop.step % cfg.log_interval == 0 or loop.step == total_steps:
                    if world.world_size > 1:
                        window_loss, window_count = world.all_reduce_sum([window_loss, window_count])
                    log(
                        {
                            "train_loss": window_loss / max(1, window_count),
                            "learning_rate": linear_schedule(loop.step, total_steps, warmup, cfg.learning_rate),
                            "train_samples_per_s": window_examples / window_seconds if window_seconds > 0 else 0.0,
                        },
                        "train",
                        loop.step,
                        loop.step / steps_per_epoch,
                    )
                    window_loss, window_count, window_examples, window_seconds = 0.0, 0, 0, 0.0
                if evaluate is not None and cfg.eval_interval and loop.step % cfg.eval_interval == 0:
                    stopped = run_eval()
                if stopped:
                    break
                if cfg.checkpoint_dir and cfg.checkpoint_interval and loop.step % cfg.checkpoint_interval == 0:
                    checkpoint()
            if stopped:
                break
            if evaluate is not None and not cfg.eval_interval:
                stopped = run_eval()
            loop.epoch, loop.next_group, loop.epoch_rng = loop.epoch + 1, 0, rng.bit_generator.state
            if cfg.checkpoint_dir and not cfg.checkpoint_interval and not stopped:
                checkpoint()
        if evaluate is not None and loop.last_eval_step != loop.step:
            run_eval()  # the last steps were not evaluated (eval_interval does not divide them)
    finally:
        bar.close()
    result.best_metrics, result.final_metrics, result.history = loop.best_metrics, loop.final_metrics, loop.history
    if keep_best and best_snapshot is not None:  # rank 0 only: it saves the model
        model.restore(best_snapshot)
        result.final_metrics = dict(loop.best_metrics)
    result.steps, result.epochs = loop.step, loop.step / steps_per_epoch
    result.train_seconds, result.train_examples, result.stopped_early = loop.train_seconds, loop.seen, stopped
    return result
