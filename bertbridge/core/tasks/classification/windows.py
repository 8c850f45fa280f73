"""Long texts as windows (``task.long_text``): one text's window logits combined into the text's.

Reading cuts each text into windows (:meth:`TextEncoder.encode_windows`); training sees every
window with its text's target; evaluation and prediction combine each text's window logits
here, so metrics, predictions and every serving path are per text.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from bertbridge.core.text.tokenize import Encoded, TextEncoder


def settings(cfg: Any) -> dict[str, Any]:
    """A spec's ``task.long_text`` as the manifest keeps it (empty: texts are truncated)."""
    if cfg is None:
        return {}
    return {"stride": cfg.stride, "max_windows": cfg.max_windows, "aggregate": cfg.aggregate}


def encode(encoder: TextEncoder, texts: Sequence[str], long_text: Mapping[str, Any], max_length: int) -> tuple[Encoded, np.ndarray]:
    """The windows of ``texts`` and the text each comes from."""
    return encoder.encode_windows(texts, max_length=max_length, stride=int(long_text["stride"]),
                                  max_windows=int(long_text["max_windows"]))


def aggregate(window_logits: np.ndarray, doc_index: np.ndarray, documents: int, how: str) -> np.ndarray:
    """Per-text logits (documents, K) from per-window ones: ``mean``, ``max`` or ``first``."""
    out = np.zeros((documents, window_logits.shape[1]), dtype=np.float32)
    if how == "mean":
        np.add.at(out, doc_index, window_logits)
        return out / np.bincount(doc_index, minlength=documents)[:, None].astype(np.float32)
    if how == "max":
        out.fill(-np.inf)
        np.maximum.at(out, doc_index, window_logits)
        return out
    first = np.unique(doc_index, return_index=True)[1]  # windows are in text order: each text's first
    return window_logits[first].astype(np.float32)


def window_targets(targets: Optional[np.ndarray], doc_index: np.ndarray) -> Optional[np.ndarray]:
    """Each window's target: its text's (labels, or multi-label rows)."""
    return None if targets is None else targets[doc_index]
