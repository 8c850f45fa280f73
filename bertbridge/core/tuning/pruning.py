"""Stopping a trial early: a plugin that hands each evaluation to the Optuna trial.

The training loop logs every evaluation through ``bertbridge_log_metrics`` (stage ``eval``);
while a trial trains, :class:`TrialReporter` is registered and reports the tuned metric at
its number (1, 2, ...: trials that search the batch size evaluate at different optimizer
steps, but the k-th evaluations line up). When the pruner says the trial is behind, it raises Optuna's
``TrialPruned``, which ends the run like any error: nothing is saved, locks are released and
``bertbridge_run_finished`` hears it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from bertbridge.core.hookspecs import hookimpl
from bertbridge.core.plugins.registry import plugin_manager


class TrialReporter:
    """Reports ``eval_<metric>`` of each evaluation to ``trial``; prunes when its pruner says so."""

    def __init__(self, trial: Any, metric: str, pruned: type) -> None:
        self.trial = trial
        self.key = f"eval_{metric}"
        self.pruned = pruned
        self.evaluations = 0

    @hookimpl
    def bertbridge_log_metrics(self, metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
        if stage != "eval" or self.key not in metrics:
            return
        value = float(metrics[self.key])
        self.evaluations += 1
        self.trial.report(value, self.evaluations)
        if self.trial.should_prune():
            raise self.pruned(f"trial {self.trial.number} pruned at evaluation {self.evaluations} (step {step}): "
                              f"{self.key}={value:.6g} is behind the earlier trials there")


@contextlib.contextmanager
def reporting(trial: Any, metric: str, pruned: type) -> Iterator[TrialReporter]:
    """Register a :class:`TrialReporter` for the duration of one trial's training."""
    reporter = TrialReporter(trial, metric, pruned)
    manager = plugin_manager()
    manager.register(reporter, name=f"bertbridge.tune.trial-{trial.number}")
    try:
        yield reporter
    finally:
        manager.unregister(reporter)
