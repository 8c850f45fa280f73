"""SageMaker Debugger capture during training: the framework-neutral part.

Core decides *what* is recorded and *when*: a fixed probe batch (the first
``debugger.examples`` validation examples, tokens kept for display), the optimizer
steps to record it at, and the side file ``bertbridge-debug.json`` that maps the
trial's evaluation-mode steps back to optimizer steps and stores the tokens and
the rule verdicts. A backend with ``debugger = True`` supplies a
:class:`DebugSession` that attaches an ``smdebug`` hook to its model and writes
the trial (the mxnet backend does, through GluonNLP's attention cells).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from bertbridge.core.errors import DataError
from bertbridge.core.text.batching import collate

REPORT_NAME = "bertbridge-debug.json"


@dataclass
class Probe:
    """The batch whose attention is recorded, with its tokens (padding dropped) and texts."""

    batch: dict
    tokens: list
    texts: list


def make_probe(features, examples: Sequence, encoder, count: int, pad_id: int) -> Probe:
    index = np.arange(min(count, len(features)))
    batch = collate(features, index, None, pad_id)
    tokens = [encoder.id_tokens(features.input_ids[i]) for i in index]
    texts = [e.text if getattr(e, "text_pair", None) is None else [e.text, e.text_pair] for e in examples[: len(index)]]
    return Probe(batch=batch, tokens=tokens, texts=texts)


@dataclass
class Record:
    """What the session wrote for one evaluation-mode step of the trial."""

    trial_step: int
    train_step: int
    validation_loss: Optional[float] = None


@dataclass
class Report:
    """The side file: how to read the trial, and the rule verdicts."""

    trial: str
    backend: str
    num_layers: int
    num_heads: int
    tokens: list
    texts: list
    records: list = field(default_factory=list)
    rules: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / REPORT_NAME
        tmp = path.with_suffix(".tmp")
        data = {**self.__dict__, "records": [r.__dict__ for r in self.records]}
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, folder: Path) -> "Report":
        path = Path(folder) / REPORT_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"{folder}: no {REPORT_NAME}; this is not a trial written by a bertbridge run with "
                "debugger.attention: true (give the debugger.out_dir of such a run)."
            ) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: damaged ({exc}); rerun the training to rewrite it.") from None
        data["records"] = [Record(**r) for r in data.get("records", [])]
        return cls(**data)

    def record_for(self, train_step: int) -> Record:
        for record in self.records:
            if record.train_step == train_step:
                return record
        have = ", ".join(str(r.train_step) for r in self.records) or "none"
        raise DataError(f"step {train_step} was not recorded in {self.trial}; recorded optimizer steps: {have}.")


class DebugSession:
    """What a backend's debugger does during :func:`bertbridge.core.training.loop.fit`.

    ``capture(step, validation_loss)`` records the probe in evaluation mode at
    optimizer step ``step`` (with the validation loss at evaluations, else None);
    ``close()`` finishes the trial and returns the rule verdicts.
    """

    def capture(self, step: int, validation_loss: Optional[float]) -> Record:
        raise NotImplementedError

    def close(self) -> Mapping[str, dict]:
        raise NotImplementedError


class Observer:
    """Calls the session at the right steps; the trainer calls this."""

    def __init__(self, session: DebugSession, steps: Optional[Sequence[int]], report: Report, out_dir: Path) -> None:
        self.session, self.report, self.out_dir = session, report, Path(out_dir)
        self.steps = set(steps) if steps is not None else {0}

    def before_training(self, step: int) -> None:
        if step == 0 and 0 in self.steps:
            self.report.records.append(self.session.capture(0, None))

    def after_step(self, step: int) -> None:
        if step in self.steps:
            self.report.records.append(self.session.capture(step, None))

    def after_eval(self, step: int, metrics: Mapping[str, float]) -> None:
        """Every evaluation is recorded with its validation loss (the overfit rule reads it)."""
        loss = metrics.get("loss")
        self.report.records.append(self.session.capture(step, None if loss is None else float(loss)))

    def close(self) -> Report:
        self.report.rules = dict(self.session.close())
        self.report.write(self.out_dir)
        return self.report


def format_verdicts(rules: Mapping[str, dict]) -> list[str]:
    """``debugger_rule_<name>=ok|triggered`` lines for the training summary."""
    lines = []
    for name, verdict in rules.items():
        state = "triggered" if verdict.get("triggered") else "ok"
        detail = verdict.get("detail", "")
        lines.append(f"debugger_rule_{name}={state}" + (f"  # {detail}" if detail else ""))
    return lines
