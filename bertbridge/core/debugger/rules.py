"""SageMaker Debugger rules, run locally with smdebug's ``invoke_rule``.

The built-in SageMaker rules run in AWS's rule containers and are not in the open
``smdebug`` package, so bertbridge ships its own two, over the tensors its debugger
sessions write: the training loss of every micro-batch (``losses`` collection,
training mode) and ``validation_loss`` at every evaluation (evaluation mode).
Each rule keeps a verdict (``triggered``, the step it fired at, a one-line
``detail``) instead of only raising, so the training summary can report it.
Running them needs ``smdebug`` (the ``debugger`` extra; the mxnet environment has it), imported
only by :func:`run_rules`: this module itself imports with numpy alone. Each rule's logic is a
plain class, combined with ``smdebug.rules.Rule`` when it runs.
"""

from __future__ import annotations

import functools
from typing import Mapping, Optional

import numpy as np

VALIDATION_LOSS = "validation_loss"


def _value(trial, name: str, step: int) -> float:
    return float(np.mean(trial.tensor(name).value(step)))


def _modes():
    from smdebug.core.modes import ModeKeys

    return ModeKeys


class _VerdictRule:
    """Verdict bookkeeping; ``super().__init__`` is ``smdebug.rules.Rule``'s (see :func:`_runnable`)."""

    def __init__(self, base_trial) -> None:
        super().__init__(base_trial, action_str="")  # type: ignore[call-arg]
        self.triggered_at: Optional[int] = None
        self.detail = ""

    def _train_loss(self, step: int) -> Optional[float]:
        """Mean training loss recorded at global ``step`` (None if none was)."""
        names = [n for n in self.base_trial.tensor_names(collection="losses") if n != VALIDATION_LOSS]
        values = [_value(self.base_trial, n, step) for n in names if step in self.base_trial.tensor(n).steps()]
        return float(np.mean(values)) if values else None

    def verdict(self) -> dict:
        return {"triggered": self.triggered_at is not None, "step": self.triggered_at, "detail": self.detail}


class LossNotDecreasing(_VerdictRule):
    """Fires when the mean training loss over windows of ``num_steps`` micro-batches has not
    beaten its best window by ``min_decrease`` (a fraction) for ``patience`` windows in a row.
    ``step`` in the verdict is the trial's global step where it fired."""

    def __init__(self, base_trial, num_steps: int = 10, patience: int = 2, min_decrease: float = 0.0) -> None:
        super().__init__(base_trial)
        self.num_steps, self.patience, self.min_decrease = num_steps, patience, min_decrease
        self._window: list[float] = []
        self._best: Optional[float] = None
        self._stale = 0

    def invoke_at_step(self, step: int) -> bool:
        if self.base_trial.mode(step) != _modes().TRAIN:
            return False
        loss = self._train_loss(step)
        if loss is None:
            return False
        self._window.append(loss)
        if len(self._window) < self.num_steps:
            return False
        mean, self._window = float(np.mean(self._window)), []
        if self._best is None or mean < self._best * (1.0 - self.min_decrease):
            self._best, self._stale = mean, 0
            self.detail = f"mean loss fell to {mean:.4g} over the last {self.num_steps} micro-batches"
            return False
        self._stale += 1
        if self._stale >= self.patience and self.triggered_at is None:
            self.triggered_at = step
            self.detail = (
                f"mean training loss did not decrease for {self.patience} windows of {self.num_steps} "
                f"micro-batches (now {mean:.4g}, best {self._best:.4g})"
            )
            return True
        return False


class Overfit(_VerdictRule):
    """Fires when the validation loss exceeds the mean training loss since the previous
    evaluation by more than ``ratio_threshold`` (relative) at ``patience`` consecutive
    evaluations, from ``start_step`` (global) on."""

    def __init__(self, base_trial, ratio_threshold: float = 0.5, patience: int = 2, start_step: int = 0) -> None:
        super().__init__(base_trial)
        self.ratio_threshold, self.patience, self.start_step = ratio_threshold, patience, start_step
        self._train: list[float] = []
        self._stale = 0
        self._evaluations = 0

    def invoke_at_step(self, step: int) -> bool:
        mode, modes = self.base_trial.mode(step), _modes()
        if mode == modes.TRAIN:
            loss = self._train_loss(step)
            if loss is not None:
                self._train.append(loss)
            return False
        if mode != modes.EVAL or not self.base_trial.has_tensor(VALIDATION_LOSS):
            return False
        if step not in self.base_trial.tensor(VALIDATION_LOSS).steps() or not self._train or step < self.start_step:
            return False
        validation, train = _value(self.base_trial, VALIDATION_LOSS, step), float(np.mean(self._train))
        self._train = []
        self._evaluations += 1
        ratio = (validation - train) / max(train, 1e-12)
        self._stale = self._stale + 1 if ratio > self.ratio_threshold else 0
        if self._stale >= self.patience and self.triggered_at is None:
            self.triggered_at = step
            self.detail = (
                f"validation loss {validation:.4g} vs training loss {train:.4g} (ratio {ratio:.2f} > "
                f"{self.ratio_threshold}) at {self.patience} evaluations in a row"
            )
            return True
        if self.triggered_at is None:
            self.detail = f"validation loss {validation:.4g} vs training loss {train:.4g} at the last evaluation"
        return False


RULES = {"loss_not_decreasing": LossNotDecreasing, "overfit": Overfit}


@functools.lru_cache(maxsize=None)
def _runnable(logic: type) -> type:
    """``logic`` as an ``smdebug.rules.Rule`` subclass (what ``invoke_rule`` runs)."""
    from smdebug.rules import Rule

    return type(logic.__name__, (logic, Rule), {})


def run_rules(trial_dir: str, names, params: Optional[Mapping[str, Mapping]] = None) -> dict[str, dict]:
    """Run the named rules over a finished trial; returns ``{name: verdict}``. Needs ``smdebug``."""
    from smdebug.rules.rule_invoker import invoke_rule
    from smdebug.trials import create_trial

    trial = create_trial(trial_dir)
    steps = trial.steps()
    end = (max(steps) + 1) if steps else 0
    out = {}
    for name in names:
        rule = _runnable(RULES[name])(trial, **dict((params or {}).get(name, {})))
        invoke_rule(rule, start_step=0, end_step=end, raise_eval_cond=False)
        out[name] = rule.verdict()
    return out
