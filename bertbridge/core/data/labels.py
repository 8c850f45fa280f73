"""Label maps: label names <-> indices, and encoding labels to numpy targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from bertbridge.core.data.readers import Example
from bertbridge.core.errors import DataError
from bertbridge.core.spec import DataConfig


@dataclass(frozen=True)
class LabelMap:
    """The ordered label names of a task; index i is output unit i."""

    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.labels)})

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @classmethod
    def from_config(cls, cfg: DataConfig, train_examples: Optional[Sequence[Example]] = None) -> "LabelMap":
        """From ``data.labels``, else ``data.labels_file``, else the sorted distinct training labels
        (numerically sorted when they are all integers, so 0/1 stay in that order)."""
        if cfg.labels is not None:
            return cls(tuple(cfg.labels))
        if cfg.labels_file is not None:
            return cls(_read_labels_file(Path(cfg.labels_file)))
        if not train_examples:
            raise DataError("no labels: set data.labels (a list) or data.labels_file in the spec, or give data.train to take them from.")
        seen = {label for e in train_examples for label in e.labels}
        if len(seen) < 2:
            raise DataError(
                f"the training data has {len(seen)} distinct label(s) ({', '.join(sorted(seen)) or 'none'}); "
                "a classifier needs at least two. Check data.label_column, or list all labels in data.labels."
            )
        try:
            ordered = sorted(seen, key=int)
        except ValueError:
            ordered = sorted(seen)
        return cls(tuple(ordered))

    def _lookup(self, label: str, path: str, line: int) -> int:
        try:
            return self._index[label]  # type: ignore[attr-defined]
        except KeyError:
            raise DataError(
                f"{path}, line {line}: label {label!r} is not one of the task's labels "
                f"({', '.join(self.labels)}). Fix the row, or add it to data.labels in the spec."
            ) from None

    def encode(self, examples: Sequence[Example], path: str, multi_label: bool) -> np.ndarray:
        """int64 (N,) class indices, or float32 (N, K) multi-hot rows for multi-label."""
        if multi_label:
            out = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
            for row, e in enumerate(examples):
                for label in e.labels:
                    out[row, self._lookup(label, path, e.line)] = 1.0
            return out
        return np.array([self._lookup(e.labels[0], path, e.line) for e in examples], dtype=np.int64)


def _read_labels_file(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: labels file not found (data.labels_file). It must list one label per line.") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: labels file is not UTF-8 text; re-save it as UTF-8.") from None
    labels = [line.strip() for line in lines if line.strip()]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise DataError(f"{path}: label(s) {', '.join(dupes)} appear more than once; list each label once.")
    if len(labels) < 2:
        raise DataError(f"{path}: needs at least two labels, one per line; found {len(labels)}.")
    return tuple(labels)
