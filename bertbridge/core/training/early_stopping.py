"""Which validation metric a run watches, and when it stops early.

The task says which metrics may be watched (:meth:`bertbridge.core.task.Task.monitors`);
this module checks the spec's choice before any work and says when a value is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from bertbridge.core.errors import SpecError
from bertbridge.core.spec import TrainingConfig


@dataclass(frozen=True)
class Monitor:
    """The watched metric and its direction."""

    name: str = "loss"
    minimize: bool = True

    def improved(self, value: float, best: Optional[float], min_delta: float) -> bool:
        if best is None:
            return True
        return value < best - min_delta if self.minimize else value > best + min_delta


def monitor_metric(cfg: TrainingConfig, allowed: Sequence[str], minimized: Sequence[str], has_validation: bool,
                   default: Optional[str] = None) -> Monitor:
    """The early-stopping metric (``default``, else ``allowed[0]``, unless the spec names another), checked
    before any training."""
    name = cfg.early_stopping.metric or default or allowed[0]
    if name not in allowed:
        raise SpecError(f"training.early_stopping.metric is {name!r}; for this task use one of: {', '.join(allowed)}.")
    if cfg.early_stopping.patience and not has_validation:
        raise SpecError("training.early_stopping.patience is set but data.validation is not: early stopping needs validation data.")
    return Monitor(name, name in minimized)
