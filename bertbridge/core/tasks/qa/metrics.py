"""SQuAD exact match and F1, computed as the official v1.1 and v2.0 evaluation scripts do.

* Answers are normalized by ``white_space_fix(remove_articles(remove_punc(lower(s))))``:
  lower case, drop ``string.punctuation``, replace ``\\b(a|an|the)\\b`` by a space,
  collapse whitespace.
* Exact match: the normalized strings are equal. F1: token overlap (bag of
  words, ``Counter``) of the normalized texts. Each question takes the maximum
  over its gold answers.
* v2 rules (``evaluate-v2.0.py``): gold answers that normalize to "" are dropped; a
  question left without gold answers has the single gold answer ``""``; when
  either side has no tokens, F1 is 1 if both have none, else 0.
  v1 rules (``evaluate-v1.1.py``): every gold answer counts; no overlap is F1 0.
  The two agree except for gold answers such as ``"the"`` that normalize to "".
* Scores are percentages (0-100). A question without a prediction scores 0
  (as in v1.1; the v2 script skips it) and is counted in ``missing``.

Example::

    >>> evaluate(squad.examples, {"q1": "Denver Broncos"})        # doctest: +SKIP
    {'exact': 100.0, 'f1': 100.0, 'total': 1, 'HasAns_exact': 100.0, ..., 'missing': 0}
    >>> f1("in the year 1850", "1850")
    0.5
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from bertbridge.core.io.artifacts import write_text_atomic
from bertbridge.core.tasks.qa.squad import QAExample

__all__ = ["evaluate", "exact_match", "f1", "find_best_thresh", "normalize_answer", "write_predictions"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
Gold = Union[str, Sequence[str]]


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: Gold, *, v2: bool = True) -> int:
    """1 if the normalized prediction equals a normalized gold answer (best over a list), else 0."""
    return max(int(normalize_answer(g) == normalize_answer(prediction)) for g in _golds(gold, v2))


def f1(prediction: str, gold: Gold, *, v2: bool = True) -> float:
    """Token-overlap F1 of the normalized texts (best over a list of gold answers)."""
    return max(_f1(prediction, g, v2) for g in _golds(gold, v2))


def evaluate(
    examples: Sequence[QAExample],
    predictions: Mapping[str, str],
    *,
    null_score_diff: Optional[Mapping[str, float]] = None,
    na_prob_thresh: Optional[float] = None,
    v2: Optional[bool] = None,
) -> dict[str, Any]:
    """The official scores of ``predictions`` (``{id: text}``) against ``examples``.

    Returns ``exact``, ``f1``, ``total``, ``HasAns_*`` and ``NoAns_*`` (each only when
    that group has questions), ``missing`` (questions without a prediction, scored 0)
    and, given ``null_score_diff`` (``{id: null_score - best_non_null_score}``, the
    official script's ``na_prob``), ``best_exact``/``best_exact_thresh``/``best_f1``/
    ``best_f1_thresh``: the scores at the best no-answer threshold, found as the
    official :func:`find_best_thresh` does. That search only helps when the
    predictions are the best NON-empty spans (postprocess with
    ``null_threshold=float("inf")``), as with the official script.

    ``na_prob_thresh`` mirrors the official ``--na-prob-thresh``: questions whose
    ``null_score_diff`` exceeds it count as answered "" in the main scores. By default
    the predictions are scored as given (postprocess has already applied its threshold).
    ``v2`` picks the scoring rules (see the module docstring); None: v2 rules when
    some question has no gold answer. A question's "has answer" is whether it has
    gold answers, as in the official script.
    """
    if not examples:
        raise ValueError("evaluate needs at least one example.")
    if v2 is None:
        v2 = any(not e.answers for e in examples)
    has_ans = {e.id: bool(e.answers) for e in examples}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    missing = 0
    for e in examples:
        golds = [a.text for a in e.answers]
        if e.id not in predictions:
            missing += 1
            exact_raw[e.id] = f1_raw[e.id] = 0
            continue
        prediction = predictions[e.id]
        exact_raw[e.id] = exact_match(prediction, golds, v2=v2)
        f1_raw[e.id] = f1(prediction, golds, v2=v2)
    exact_scores, f1_scores = exact_raw, f1_raw
    if na_prob_thresh is not None:
        if null_score_diff is None:
            raise ValueError("na_prob_thresh needs null_score_diff.")
        exact_scores = _apply_no_ans_threshold(exact_raw, null_score_diff, has_ans, na_prob_thresh)
        f1_scores = _apply_no_ans_threshold(f1_raw, null_score_diff, has_ans, na_prob_thresh)
    out: dict[str, Any] = _eval_dict(exact_scores, f1_scores, list(has_ans))
    for prefix, ids in (("HasAns", [k for k, v in has_ans.items() if v]), ("NoAns", [k for k, v in has_ans.items() if not v])):
        if ids:
            out.update({f"{prefix}_{k}": v for k, v in _eval_dict(exact_scores, f1_scores, ids).items()})
    if null_score_diff is not None:
        answered = {k: v for k, v in predictions.items() if k in has_ans}
        na_probs = {k: float(v) for k, v in null_score_diff.items() if k in answered}
        lacking = [k for k in answered if k not in na_probs]
        if lacking:
            raise ValueError(
                f"null_score_diff has no value for {len(lacking)} predicted question(s), e.g. {lacking[0]!r}; "
                "give one per prediction (Prediction.null_score_diff)."
            )
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(answered, exact_raw, na_probs, has_ans)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(answered, f1_raw, na_probs, has_ans)
    out["missing"] = missing
    return out


def find_best_thresh(
    preds: Mapping[str, str], scores: Mapping[str, float], na_probs: Mapping[str, float], qid_to_has_ans: Mapping[str, bool]
) -> tuple[float, float]:
    """The official v2 search: start with every question predicted "no answer" (score =
    number of no-answer questions), then, in increasing ``na_probs`` order, switch each
    question to its predicted text (+ its score if it has an answer; -1 if it has none
    and the prediction is non-empty) and keep the best running score and the ``na_prob``
    where it was reached. Returns (100 * best / len(scores), threshold).

    Differs from the official function only for questions absent from ``preds``: they
    are wrong at every threshold (the official script counts missing no-answer
    questions as right but not in the denominator).
    """
    cur = sum(1 for k, v in qid_to_has_ans.items() if not v and k in preds)
    best, best_thresh = cur, 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur += diff
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def write_predictions(path: Union[str, Path], predictions: Union[Mapping[str, Any], Sequence[Any]]) -> Path:
    """Write ``{id: answer_text}`` (the official predictions file) atomically.

    ``predictions`` is a mapping (written as given, so ``{id: null_score_diff}`` works
    too) or a list of :class:`~.postprocess.Prediction`.
    """
    path = Path(path)
    data = dict(predictions) if isinstance(predictions, Mapping) else {p.id: p.text for p in predictions}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------


def _golds(gold: Gold, v2: bool) -> list[str]:
    golds = [gold] if isinstance(gold, str) else list(gold)
    if v2:
        golds = [g for g in golds if normalize_answer(g)] or [""]
    return golds or [""]


def _f1(prediction: str, gold: str, v2: bool) -> float:
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if v2 and (not pred_toks or not gold_toks):
        return float(pred_toks == gold_toks)
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _apply_no_ans_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float], has_ans: Mapping[str, bool], thresh: float) -> dict[str, float]:
    return {k: (float(not has_ans[k]) if na_probs.get(k, 0.0) > thresh else s) for k, s in scores.items()}


def _eval_dict(exact: Mapping[str, float], f1s: Mapping[str, float], ids: list[str]) -> dict[str, Any]:
    total = len(ids)
    return {"exact": 100.0 * sum(exact[k] for k in ids) / total, "f1": 100.0 * sum(f1s[k] for k in ids) / total, "total": total}
