"""The learning-rate schedule and the step arithmetic of a run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bertbridge.core.spec import TrainingConfig


def linear_schedule(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then linear decay to 0
    (the same curve as Hugging Face's ``get_linear_schedule_with_warmup``)."""
    if step < warmup_steps:
        return peak * step / max(1, warmup_steps)
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@dataclass(frozen=True)
class Schedule:
    """How many optimizer steps a run has, and the learning rate at each."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    peak: float

    @classmethod
    def for_run(cls, examples: int, cfg: TrainingConfig) -> "Schedule":
        micro_per_epoch = math.ceil(examples / cfg.batch_size)
        steps_per_epoch = math.ceil(micro_per_epoch / cfg.gradient_accumulation_steps)
        total = steps_per_epoch * cfg.epochs
        return cls(steps_per_epoch, total, int(round(total * cfg.warmup_ratio)), cfg.learning_rate)

    def learning_rate(self, step: int) -> float:
        return linear_schedule(step, self.total_steps, self.warmup_steps, self.peak)

    def epoch(self, step: int) -> float:
        """Fractional epoch after ``step`` optimizer steps."""
        return step / self.steps_per_epoch
