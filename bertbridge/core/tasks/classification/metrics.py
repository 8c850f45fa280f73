"""Framework-neutral evaluation metrics for classification (numpy only).

All functions take plain array-likes (lists, numpy arrays, or anything
``np.asarray`` understands) and return plain Python floats / numpy arrays, so
they can be used by every backend without importing a deep-learning framework.

Zero-division convention: whenever a ratio has a zero denominator (a class that
is never predicted, a class with no true examples, ...) the result is ``0.0``;
no ``NaN`` is produced and no ``RuntimeWarning`` is emitted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "confusion_matrix",
    "metric_key_part",
    "multilabel_metrics",
]

_UNSAFE_RUN = re.compile(r"[^\w.\-]+")


def metric_key_part(label: str) -> str:
    """Sanitise a label for use inside a metric name.

    Every run of characters other than letters, digits (any script), ``_``,
    ``.`` and ``-`` is replaced by a single ``'_'``, so that log lines of the form
    ``name=value`` stay parseable by a regex such as ``([\\w.-]+)=(\\S+)``.
    Non-string labels are converted with ``str()`` first; the empty string
    becomes ``'_'``.

    >>> metric_key_part("very good!")
    'very_good_'
    >>> metric_key_part("a  /  b")
    'a_b'
    """
    part = _UNSAFE_RUN.sub("_", str(label))
    return part if part else "_"


# ---------------------------------------------------------------------------
# internal helpers
# ---------------------------------------------------------------------------


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` as float64, with 0.0 wherever ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _label_parts(labels: Sequence[Any]) -> list[str]:
    """Sanitised, unique metric-key parts for ``labels``."""
    if isinstance(labels, (str, bytes)):
        raise ValueError("labels must be a sequence of label names, not a single string")
    parts = [metric_key_part(lab) for lab in labels]
    if not parts:
        raise ValueError("labels must contain at least one label name")
    # Labels that sanitise to the same part (e.g. "a b" and "a_b") are told apart
    # by their class index, so metrics never overwrite each other.
    counts: dict[str, int] = {}
    for part in parts:
        counts[part] = counts.get(part, 0) + 1
    return [f"{part}_{i}" if counts[part] > 1 else part for i, part in enumerate(parts)]


def _as_index_array(values: Any, name: str) -> np.ndarray:
    """Convert class indices to a 1-D int64 array, validating dtype and shape."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one example")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must contain integer class indices, got non-integer values")
        return arr.astype(np.int64)
    raise ValueError(f"{name} must contain integer class indices, got dtype {arr.dtype}")


def _check_indices(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = _as_index_array(y_true, "y_true")
    p = _as_index_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name} contains class index {bad}, outside the valid range [0, {num_classes})"
            )
    return t, p


def _confusion(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64, copy=False)


def _per_class(
    out: dict[str, float],
    parts: list[str],
    tp: np.ndarray,
    n_pred: np.ndarray,
    n_true: np.ndarray,
) -> np.ndarray:
    """Fill per-class precision/recall/f1/support into ``out``; return the F1 vector."""
    precision = _safe_div(tp, n_pred)
    recall = _safe_div(tp, n_true)
    # F1 = 2PR/(P+R) = 2TP/(2TP+FP+FN) = 2TP/(n_pred+n_true); 0 when that is 0/0.
    f1 = _safe_div(2.0 * tp, n_pred + n_true)
    for i, part in enumerate(parts):
        out[f"precision_{part}"] = float(precision[i])
        out[f"recall_{part}"] = float(recall[i])
        out[f"f1_{part}"] = float(f1[i])
        out[f"support_{part}"] = float(n_true[i])
    return f1


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Confusion matrix for single-label classification.

    Args:
        y_true: 1-D array of true class indices in ``[0, num_classes)``.
        y_pred: 1-D array of predicted class indices, same shape as ``y_true``.
        num_classes: number of classes K (>= 1).

    Returns:
        ``(K, K)`` int64 array ``cm`` where ``cm[i, j]`` counts examples whose
        true class is ``i`` and predicted class is ``j`` (rows = true,
        columns = predicted).

    Raises:
        ValueError: on shape mismatch, empty input, non-integer indices,
            indices outside ``[0, K)`` or ``num_classes < 1``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    k = int(num_classes)
    if k < 1:
        raise ValueError(f"num_classes must be >= 1, got {k}")
    t, p = _check_indices(y_true, y_pred, k)
    return _confusion(t, p, k)


def classification_metrics(y_true: Any, y_pred: Any, labels: Sequence[Any]) -> dict[str, float]:
    """Single-label classification metrics.

    Args:
        y_true: 1-D int array of true class indices into ``labels``.
        y_pred: 1-D int array of predicted class indices, same shape.
        labels: sequence of K label names; index ``i`` means ``labels[i]``.

    Returns:
        Flat dict of Python floats with keys ``accuracy``, ``macro_f1``,
        ``micro_f1``, ``weighted_f1``, ``mcc`` and, for each class ``c``
        (name sanitised with :func:`metric_key_part`), ``precision_<c>``,
        ``recall_<c>``, ``f1_<c>`` and ``support_<c>``.

        * macro = unweighted mean over all K labels; labels absent from both
          ``y_true`` and ``y_pred`` still count, with F1 0.
        * micro_f1 equals accuracy for single-label data.
        * weighted_f1 weights each class's F1 by its support (true count).
        * Zero division (class never predicted / never true) gives 0.0.
        * mcc is the multi-class Matthews correlation coefficient
          (Gorodkin's R_K, as ``sklearn.metrics.matthews_corrcoef``); 0.0 when
          its denominator is 0 (e.g. a constant prediction).

    Raises:
        ValueError: on shape mismatch, empty input, indices outside ``[0, K)``,
            empty ``labels`` or labels that collide after sanitising.
    """
    parts = _label_parts(labels)
    k = len(parts)
    t, p = _check_indices(y_true, y_pred, k)
    cm = _confusion(t, p, k)

    n = float(t.size)
    tp = np.diag(cm).astype(np.float64)
    n_true = cm.sum(axis=1).astype(np.float64)  # support
    n_pred = cm.sum(axis=0).astype(np.float64)
    correct = float(tp.sum())

    out: dict[str, float] = {}
    accuracy = correct / n
    out["accuracy"] = accuracy
    f1 = _per_class(out, parts, tp, n_pred, n_true)
    out["macro_f1"] = float(f1.mean())
    out["micro_f1"] = accuracy  # micro P = micro R = accuracy for single-label
    out["weighted_f1"] = float(np.dot(f1, n_true) / n)

    # Gorodkin R_K: cov(t,p) / sqrt(cov(t,t) * cov(p,p)) computed from the
    # confusion matrix (scaled by n^2, which cancels).
    cov_tp = correct * n - float(np.dot(n_true, n_pred))
    cov_tt = n * n - float(np.dot(n_true, n_true))
    cov_pp = n * n - float(np.dot(n_pred, n_pred))
    denom = cov_tt * cov_pp
    out["mcc"] = float(cov_tp / np.sqrt(denom)) if denom > 0 else 0.0
    return out


def multilabel_metrics(
    y_true: Any, probs: Any, labels: Sequence[Any], threshold: float = 0.5
) -> dict[str, float]:
    """Multi-label classification metrics.

    Args:
        y_true: ``(N, K)`` array of 0/1 (or bool) targets.
        probs: ``(N, K)`` array of per-label probabilities in ``[0, 1]``.
        labels: sequence of K label names (column ``j`` means ``labels[j]``).
        threshold: a label is predicted when ``probs >= threshold``; must lie
            strictly inside ``(0, 1)``.

    Returns:
        Flat dict of Python floats with keys ``subset_accuracy`` (fraction of
        rows predicted exactly right), ``micro_f1``, ``macro_f1``,
        ``micro_precision``, ``micro_recall``, ``hamming_loss`` (fraction of
        wrong cells) and, per class ``c`` (sanitised with
        :func:`metric_key_part`), ``precision_<c>``, ``recall_<c>``,
        ``f1_<c>``, ``support_<c>``.  Zero division gives 0.0.

    Raises:
        ValueError: on shape mismatch (including K != len(labels)), empty
            input, non-0/1 targets, non-finite or out-of-range probabilities,
            or a threshold outside ``(0, 1)``.
    """
    parts = _label_parts(labels)
    k = len(parts)

    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}") from None
    if not 0.0 < thr < 1.0:  # also rejects NaN
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")

    t = np.asarray(y_true)
    pr = np.asarray(probs)
    if t.ndim != 2:
        raise ValueError(f"y_true must be a 2-D (N, K) array, got shape {t.shape}")
    if pr.shape != t.shape:
        raise ValueError(f"y_true and probs must have the same shape, got {t.shape} and {pr.shape}")
    if t.shape[1] != k:
        raise ValueError(f"y_true/probs have {t.shape[1]} columns but {k} labels were given")
    if t.shape[0] == 0:
        raise ValueError("y_true is empty; metrics need at least one example")
    if t.dtype != np.bool_ and not (
        np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating)
    ):
        raise ValueError(f"y_true must be numeric 0/1 values, got dtype {t.dtype}")
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("y_true must contain only 0/1 values")
    if not (np.issubdtype(pr.dtype, np.floating) or np.issubdtype(pr.dtype, np.integer)):
        raise ValueError(f"probs must be numeric, got dtype {pr.dtype}")
    pr = pr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(pr)) or pr.min() < 0.0 or pr.max() > 1.0:
        raise ValueError("probs must be finite probabilities in [0, 1] (did you pass logits?)")

    truth = t.astype(bool)
    pred = pr >= thr

    tp = np.count_nonzero(truth & pred, axis=0).astype(np.float64)
    n_true = np.count_nonzero(truth, axis=0).astype(np.float64)
    n_pred = np.count_nonzero(pred, axis=0).astype(np.float64)

    out: dict[str, float] = {}
    out["subset_accuracy"] = float(np.mean(np.all(truth == pred, axis=1)))
    tp_all, pred_all, true_all = tp.sum(), n_pred.sum(), n_true.sum()
    out["micro_precision"] = float(_safe_div(tp_all, pred_all))
    out["micro_recall"] = float(_safe_div(tp_all, true_all))
    out["micro_f1"] = float(_safe_div(2.0 * tp_all, pred_all + true_all))
    f1 = _per_class(out, parts, tp, n_pred, n_true)
    out["macro_f1"] = float(f1.mean())
    out["hamming_loss"] = float(np.mean(truth != pred))
    return out
