"""``training_curves.png``: the loss (training and validation) and the monitored validation metric
per optimizer step, drawn headless (a bare ``matplotlib.figure.Figure``, no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from bertbridge.core.reports.record import RunRecord

CURVES_NAME = "training_curves.png"


def write_curves(record: RunRecord, out: Path, title: str = "") -> Path:
    """Draw ``record``'s curves to ``out`` (a PNG) under ``title``; returns ``out``."""
    from matplotlib.figure import Figure  # a bare Figure draws with Agg, leaving pyplot's backend alone

    metric = record.metric
    show_metric = metric != "loss" and any(_has(e, metric) for e in record.evaluations)
    figure = Figure(figsize=(10 if show_metric else 5.5, 3.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, 2 if show_metric else 1, squeeze=False)[0]
    loss = axes[0]
    _line(loss, record.train, "loss", "training", "-")
    _line(loss, record.evaluations, "loss", "validation", "o-")
    loss.set_title("loss")
    if show_metric:
        _line(axes[1], record.evaluations, metric, "validation", "o-", color="tab:green")
        axes[1].set_title(f"validation {metric}")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.savefig(out, format="png")
    return out


def _has(row: dict[str, Any], key: str) -> bool:
    return isinstance(row.get(key), (int, float))


def _line(ax, rows: Sequence[dict[str, Any]], key: str, label: str, style: str, **kwargs) -> None:
    points = [(r["step"], r[key]) for r in rows if _has(r, key)]
    if points:
        steps, values = zip(*points)
        ax.plot(steps, values, style, label=label, markersize=4, **kwargs)
