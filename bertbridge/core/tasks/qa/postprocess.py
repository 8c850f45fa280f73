"""From start/end logits of every window to one answer span per question.

For each window the ``n_best`` highest start logits and ``n_best`` highest end
logits among CONTEXT tokens are paired; a pair is a candidate when ``end >=
start`` and it spans at most ``max_answer_length`` tokens. Its score is
``start_logit + end_logit``. Candidates of all windows of a question are pooled;
the same character span found in two overlapping windows counts once, with its
best score. The answer is ``context[start:end]`` with character offsets taken
from the window's offsets, so its text is the ORIGINAL context (casing, accents,
spacing), extended to whole tokens.

SQuAD v2 (``v2=True``), Hugging Face / Google convention: the null ("no
answer") score of a question is the minimum over its windows of
``start_logit[0] + end_logit[0]`` (the ``[CLS]`` position) and

    null_score_diff = null_score - best_non_null_score

The prediction is ``""`` when ``null_score_diff > null_threshold``: a larger
threshold answers more questions. ``null_score_diff`` is what the official v2
script calls the no-answer probability (``na_prob``) when searching the best
threshold (see :func:`~.metrics.evaluate`). With ``v2=False`` the answer
is empty only when no window has a valid span.

Example::

    >>> preds = postprocess(squad.examples, feats, start_logits, end_logits, v2=squad.v2)  # doctest: +SKIP
    >>> preds[0].text, preds[0].nbest[0].probability                                  # doctest: +SKIP
    ('Denver Broncos', 0.93)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence, Union

import numpy as np

from bertbridge.core.tasks.qa.features import QAFeatures
from bertbridge.core.tasks.qa.squad import QAExample

__all__ = ["NBestAnswer", "Prediction", "postprocess"]

Logits = Union[np.ndarray, Sequence[np.ndarray]]
_CHUNK = 2048  # windows scored at once: bounds the (chunk, k, k) pair array


class NBestAnswer(NamedTuple):
    """One candidate: text, character span (end exclusive; -1/-1 for the null answer), score, softmax probability."""

    text: str
    start: int
    end: int
    score: float
    probability: float


@dataclass
class Prediction:
    """The answer to one question. ``text == context[start:end]``; ``""`` with start = end = -1
    when no answer is predicted. ``score`` is the chosen answer's score (the null score for "")."""

    id: str
    text: str
    score: float
    start: int
    end: int
    null_score_diff: float
    nbest: list[NBestAnswer] = field(default_factory=list)


def postprocess(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: Logits,
    end_logits: Logits,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_threshold: float = 0.0,
    v2: bool = False,
) -> list[Prediction]:
    """One :class:`Prediction` per example, in example order.

    ``start_logits``/``end_logits`` are one 1-D array per window (the window's
    length), or a 2-D ``(windows, width)`` array padded to at least the longest
    window; positions past a window's length are ignored.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best ({n_best}) and max_answer_length ({max_answer_length}) must be at least 1.")
    n_windows = len(features)
    windows_per_example = np.bincount(features.example_index, minlength=len(examples))
    if len(windows_per_example) > len(examples) or (windows_per_example == 0).any():
        raise ValueError(
            f"features (windows of {len(windows_per_example)} examples) do not match the {len(examples)} examples given; "
            "postprocess the same examples, in the same order, that build_features was given."
        )
    width = int(features.lengths.max()) if n_windows else 1
    starts = _padded(start_logits, features, width, "start_logits")
    ends = _padded(end_logits, features, width, "end_logits")
    offsets = np.full((n_windows, width, 2), -1, dtype=np.int64)
    for w, off in enumerate(features.offsets):
        offsets[w, : len(off)] = off
    in_context = offsets[:, :, 0] >= 0
    window_null = starts[:, 0] + ends[:, 0]

    chunks = [
        _candidates(starts[c : c + _CHUNK], ends[c : c + _CHUNK], in_context[c : c + _CHUNK], n_best, max_answer_length, c)
        for c in range(0, n_windows, _CHUNK)
    ]
    win, st, et = (np.concatenate([ch[j] for ch in chunks] or [np.zeros(0, np.int64)]) for j in range(3))
    score = np.concatenate([ch[3] for ch in chunks] or [np.zeros(0)])
    ex = features.example_index[win]
    cs, ce = offsets[win, st, 0], offsets[win, et, 1]
    # one entry per (example, character span), its best score; then best first within each example
    order = np.lexsort((-score, ce, cs, ex))
    ex, cs, ce, score = ex[order], cs[order], ce[order], score[order]
    first = np.ones(len(ex), dtype=bool)
    first[1:] = (ex[1:] != ex[:-1]) | (cs[1:] != cs[:-1]) | (ce[1:] != ce[:-1])
    ex, cs, ce, score = ex[first], cs[first], ce[first], score[first]
    order = np.lexsort((cs, -score, ex))
    ex, cs, ce, score = ex[order], cs[order], ce[order], score[order]
    keep = np.arange(len(ex)) - np.searchsorted(ex, ex) < n_best  # the n_best best of each example
    ex, spans = ex[keep], list(zip(score[keep].tolist(), cs[keep].tolist(), ce[keep].tolist()))
    bounds = np.searchsorted(ex, np.arange(len(examples) + 1)).tolist()

    null = np.full(len(examples), np.inf)
    np.minimum.at(null, features.example_index, window_null)
    return [
        _prediction(example, spans[bounds[i] : bounds[i + 1]], float(null[i]), n_best, null_threshold, v2)
        for i, example in enumerate(examples)
    ]


def _prediction(example: QAExample, spans: list[tuple[float, int, int]], null_score: float, n_best: int, null_threshold: float, v2: bool) -> Prediction:
    """``spans``: (score, char start, char end), best first."""
    context = example.context
    diff = null_score - spans[0][0] if spans else math.inf
    entries = spans
    if v2 and math.isfinite(null_score):
        entries = sorted(spans + [(null_score, -1, -1)], key=lambda e: -e[0])[:n_best]
    top = entries[0][0] if entries else 0.0
    weights = [math.exp(e[0] - top) for e in entries]
    total = sum(weights)
    nbest = [NBestAnswer(context[a:b] if a >= 0 else "", a, b, sc, w / total) for (sc, a, b), w in zip(entries, weights)]
    if spans and not (v2 and diff > null_threshold):
        sc, a, b = spans[0]
        return Prediction(example.id, context[a:b], sc, a, b, diff, nbest)
    return Prediction(example.id, "", null_score, -1, -1, diff, nbest)


def _padded(logits: Logits, features: QAFeatures, width: int, name: str) -> np.ndarray:
    n = len(features)
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        if logits.shape[0] != n or logits.shape[1] < width:
            raise ValueError(
                f"{name} has shape {logits.shape}; expected ({n}, >= {width}): one row per window, "
                "at least as wide as the longest window."
            )
        return logits[:, :width].astype(np.float64)
    rows = list(logits)
    if len(rows) != n:
        raise ValueError(f"{name} has {len(rows)} rows for {n} windows; give one row of logits per window.")
    out = np.full((n, width), -np.inf)
    for w, row in enumerate(rows):
        row = np.asarray(row, dtype=np.float64).reshape(-1)
        m = int(features.lengths[w])
        if len(row) < m:
            raise ValueError(f"{name}[{w}] has {len(row)} values for a window of {m} tokens.")
        out[w, :m] = row[:m]
    return out


def _candidates(starts: np.ndarray, ends: np.ndarray, in_context: np.ndarray, n_best: int, max_len: int, offset: int):
    """Per window, its ``n_best`` best valid (start, end) token pairs: flat arrays window, start, end, score."""
    n, width = starts.shape
    k = min(n_best, width)
    s_masked = np.where(in_context, starts, -np.inf)
    e_masked = np.where(in_context, ends, -np.inf)
    s_idx = np.argpartition(-s_masked, k - 1, axis=1)[:, :k]
    e_idx = np.argpartition(-e_masked, k - 1, axis=1)[:, :k]
    s_val = np.take_along_axis(s_masked, s_idx, axis=1)
    e_val = np.take_along_axis(e_masked, e_idx, axis=1)
    length = e_idx[:, None, :] - s_idx[:, :, None] + 1
    pair = s_val[:, :, None] + e_val[:, None, :]
    pair = np.where((length >= 1) & (length <= max_len), pair, -np.inf).reshape(n, k * k)
    kk = min(n_best, k * k)
    top = np.argpartition(-pair, kk - 1, axis=1)[:, :kk]
    top_score = np.take_along_axis(pair, top, axis=1)
    keep = np.isfinite(top_score)
    window = np.broadcast_to(np.arange(n)[:, None] + offset, top.shape)[keep]
    st = np.take_along_axis(s_idx, top // k, axis=1)[keep]
    et = np.take_along_axis(e_idx, top % k, axis=1)[keep]
    return window, st, et, top_score[keep]
