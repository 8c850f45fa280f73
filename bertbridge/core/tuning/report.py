"""What a search leaves behind: ``trials.csv`` (one row per trial), ``trials.png`` (each
trial's score and the best so far; each trial's metric per evaluation, pruned ones ending
early) and ``tuning.json`` (the summary ``bertbridge tune`` prints)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from bertbridge.core.io.artifacts import write_text_atomic

TABLE_NAME = "trials.csv"
PLOT_NAME = "trials.png"
SUMMARY_NAME = "tuning.json"
STATES = ("complete", "pruned", "failed")


@dataclass
class TrialRecord:
    """One trial: ``state`` is one of :data:`STATES`; ``value`` the metric of the model it saved
    (None unless complete); ``evaluations`` its metric by optimizer step, as reported while training."""

    number: int
    state: str
    value: Optional[float]
    params: dict[str, Any]
    seconds: float
    evaluations: dict[int, float] = field(default_factory=dict)
    """The tuned metric at each evaluation, by its number (1, 2, ...)."""
    error: str = ""
    """Why a failed trial failed (a bertbridge error's message), if it raised one."""


def write_table(path: Path, trials: Sequence[TrialRecord], metric: str, parameters: Sequence[str]) -> Path:
    """``trials.csv``: trial, state, the metric, each searched field, evaluations, seconds, error."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "state", metric, *parameters, "evaluations", "seconds", "error"])
    for t in trials:
        writer.writerow([t.number, t.state, "" if t.value is None else repr(t.value),
                         *[t.params.get(p, "") for p in parameters], len(t.evaluations), f"{t.seconds:.1f}", t.error])
    write_text_atomic(path, out.getvalue())
    return path


def write_summary(path: Path, summary: dict[str, Any], trials: Sequence[TrialRecord]) -> Path:
    body = {**summary, "trials": [{**asdict(t), "evaluations": {str(k): v for k, v in t.evaluations.items()}} for t in trials]}
    write_text_atomic(path, json.dumps(body, indent=2, sort_keys=False) + "\n")
    return path


def write_plot(path: Path, trials: Sequence[TrialRecord], metric: str, minimize: bool) -> Path:
    """``trials.png``, drawn headless like the training curves."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    scores, curves = figure.subplots(1, 2)
    _draw_scores(scores, trials, metric, minimize)
    for t in trials:
        if t.evaluations:
            steps = sorted(t.evaluations)
            style = ":" if t.state == "pruned" else "-"
            curves.plot(steps, [t.evaluations[s] for s in steps], style, marker="o", markersize=3,
                        label=f"trial {t.number}" + (" (pruned)" if t.state == "pruned" else ""))
    curves.set_title(f"validation {metric} at each evaluation")
    curves.set_xlabel("evaluation")
    if curves.get_lines() and len(curves.get_lines()) <= 12:
        curves.legend(loc="best", fontsize="x-small")
    for ax in (scores, curves):
        ax.grid(alpha=0.3)
    staged = path.with_name(f".{path.name}.tmp")
    figure.savefig(staged, format="png")
    os.replace(staged, path)
    return path


def _draw_scores(ax, trials: Sequence[TrialRecord], metric: str, minimize: bool) -> None:
    done = [t for t in trials if t.value is not None and math.isfinite(t.value)]
    if done:
        ax.plot([t.number for t in done], [t.value for t in done], "o", label="trial")
        best, running = [], None
        for t in done:
            running = t.value if running is None else (min if minimize else max)(running, t.value)
            best.append(running)
        ax.step([t.number for t in done], best, where="post", color="tab:green", label="best so far")
    pruned = [t for t in trials if t.state == "pruned" and t.evaluations]
    if pruned:
        ax.plot([t.number for t in pruned], [t.evaluations[max(t.evaluations)] for t in pruned], "x", color="tab:red",
                label="pruned (last evaluation)")
    ax.set_title(f"validation {metric} of each trial ({'lower' if minimize else 'higher'} is better)")
    ax.set_xlabel("trial")
    if ax.get_lines():
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no trial finished", ha="center", va="center", transform=ax.transAxes)
