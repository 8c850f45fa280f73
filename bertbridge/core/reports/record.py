"""The run record: the resolved spec and the metric history of the run that trained a model.

Saved as ``training_history.json`` in the model folder, so a folder that is loaded and saved again
keeps its curves and card. Plain JSON (non-finite numbers become ``null``); a damaged file is
ignored on load, never fatal: it only feeds the report.

Example::

    >>> record = RunRecord(spec={"backend": "pytorch"}, metric="accuracy",
    ...                    train=[{"step": 10, "epoch": 0.5, "loss": 0.69, "learning_rate": 5e-5}],
    ...                    evaluations=[{"step": 20, "epoch": 1.0, "accuracy": 0.81, "loss": 0.45}])
    >>> RunRecord.from_json(record.to_json()) == record
    True
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

RECORD_NAME = "training_history.json"
RECORD_VERSION = 1


@dataclass
class RunRecord:
    spec: Mapping[str, Any]
    """The resolved task spec (``TaskSpec.to_dict()``)."""
    metric: str
    """The validation metric the curves show beside the loss (the task's monitored metric)."""
    train: list[dict[str, Any]] = field(default_factory=list)
    """One entry per ``train`` log line: ``step``, ``epoch``, ``loss``, ``learning_rate``."""
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    """One entry per validation pass: ``step``, ``epoch`` and the metrics (``loss`` among them)."""

    def to_json(self) -> str:
        data = {"version": RECORD_VERSION, "spec": self.spec, "metric": self.metric, "train": self.train,
                "evaluations": self.evaluations}
        return json.dumps(_finite(data), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        """Parse :meth:`to_json`'s output; raises ValueError when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError("not a version-1 run record")
        spec, metric, train, evals = data.get("spec"), data.get("metric"), data.get("train"), data.get("evaluations")
        if not (isinstance(spec, dict) and isinstance(metric, str) and _rows(train) and _rows(evals)):
            raise ValueError("a run record needs spec (object), metric (string), train and evaluations (lists of objects)")
        return cls(spec=spec, metric=metric, train=train, evaluations=evals)


def read_record(folder: Path) -> Optional[RunRecord]:
    """The folder's run record, or None when it has none or it cannot be read."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return RunRecord.from_json(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 (a damaged side file, even a deeply nested one, never stops a load)
        return None


_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/@\s]+@")


def redact_credentials(value: Any) -> Any:
    """``value`` (a spec dict) with the user and password of every URL in it replaced by ``***``
    (``https://user:token@host`` -> ``https://***@host``): the record and cards are meant to be shared."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {k: redact_credentials(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_credentials(v) for v in value]
    return value


def _rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(row, dict) and isinstance(row.get("step"), int) for row in value)


def _finite(value: Any) -> Any:
    """NaN and infinities as None: strict JSON that any reader parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
