"""Token attributions by Integrated Gradients on the word embeddings, the same on every backend.

For one input, the score is the logit of the predicted label (or, for QA, the start logit plus
the end logit of the predicted span: :meth:`~bertbridge.core.task.Task.explain_target`). The
baseline replaces every word piece but ``[CLS]``/``[SEP]`` with ``[PAD]`` (the same length,
positions and token types). Each token's attribution is ``(x - x') . mean(grad)`` over ``steps``
points of the straight path from the baseline's embeddings ``x'`` to the input's ``x`` (midpoint
rule), so the attributions add up to ``score(x) - score(x')`` (completeness). The gap is reported
and kept within ``TOLERANCE`` by doubling the steps (up to ``MAX_STEPS``). The backend supplies
two primitives, :meth:`~bertbridge.core.backend.InferenceModel.word_embeddings` and
:meth:`~bertbridge.core.backend.InferenceModel.embedding_gradients`; the algorithm is here, once.

Example::

    >>> model = bertbridge.load("outputs/sentiment")                                  # doctest: +SKIP
    >>> result = explain(model, "An absolute joy from start to finish.")               # doctest: +SKIP
    >>> result["target"], result["tokens"][:3], result["completeness_gap"] < 0.05       # doctest: +SKIP
    ('label positive', ['[CLS]', 'an', 'absolute'], True)
"""

from __future__ import annotations

import html
from typing import Any, Optional

import numpy as np

from bertbridge.core.errors import DataError
from bertbridge.core.plugins.registry import tasks
from bertbridge.core.text.batching import encode_batch

STEPS = 32
MAX_STEPS = 256
CHUNK = 16  # interpolation points per backward pass, at most
TOKENS_PER_PASS = 2048  # and at most this many tokens (points x length) per pass
TOLERANCE = 0.05
"""The largest completeness gap accepted: ``|sum(attributions) - (score - baseline_score)|`` over
``max(1, |score - baseline_score|)``."""


def check_one_window(predictor, text: str, text_pair: Optional[str], command: str) -> None:
    """``explain`` and ``attention`` read one sequence: a ``task.long_text`` model's text must fit in one
    window, or what they show would not be what the model predicts from."""
    settings = predictor.manifest.long_text
    if not settings or text_pair is not None:
        return
    length = predictor.manifest.max_seq_length
    features, _ = predictor.encoder.encode_windows([text], max_length=length, stride=int(settings["stride"]), max_windows=2)
    if len(features) > 1:
        raise DataError(f"{command} reads one window of {length} tokens, and this model (task.long_text) reads this text in "
                        f"several and combines them; pass a passage of at most {length} tokens.")


def explain(predictor, text: str, text_pair: Optional[str] = None, *, steps: int = STEPS) -> dict[str, Any]:
    """Attributions of ``predictor``'s model (a loaded model folder) for one input; a JSON-ready dict."""
    check_one_window(predictor, text, text_pair, "explain")
    encoder, model = predictor.encoder, predictor.model
    features, batch = encode_batch(encoder, [(text, text_pair)], predictor.manifest.max_seq_length)
    weights, target = tasks().get(predictor.manifest.task).explain_target(predictor.manifest, model.logits(batch), batch)
    weights = weights.astype(np.float32)
    inputs = model.word_embeddings(batch["input_ids"])
    baseline = model.word_embeddings(_baseline_ids(batch["input_ids"], encoder))
    ends, _ = model.embedding_gradients(_repeat(batch, 2), np.concatenate([inputs, baseline]).astype(np.float32),
                                        np.repeat(weights, 2, axis=0))
    score, base_score = float(ends[0]), float(ends[1])
    steps = min(steps, MAX_STEPS)
    while True:
        attributions = _integrate(model, batch, weights, inputs, baseline, steps)
        gap = abs(float(attributions.sum()) - (score - base_score)) / max(1.0, abs(score - base_score))
        if gap <= TOLERANCE or steps >= MAX_STEPS:
            break
        steps = min(2 * steps, MAX_STEPS)
    return {"target": target, "tokens": encoder.id_tokens(features.input_ids[0]),
            "attributions": [round(float(a), 6) for a in attributions], "score": round(score, 6),
            "baseline_score": round(base_score, 6), "completeness_gap": round(gap, 6), "tolerance": TOLERANCE,
            "steps": steps, "method": "integrated gradients on the word embeddings, [PAD] baseline, midpoint rule",
            "text": text if text_pair is None else [text, text_pair], "backend": predictor.running_backend}


def _baseline_ids(input_ids: np.ndarray, encoder) -> np.ndarray:
    """``[PAD]`` everywhere but the special tokens ([CLS], [SEP]), which keep their ids."""
    special = np.isin(input_ids, np.asarray(sorted(encoder.template_ids()), dtype=input_ids.dtype))
    return np.where(special, input_ids, encoder.pad_id)


def _integrate(model, batch, weights, inputs, baseline, steps: int) -> np.ndarray:
    """Per-token attributions: (x - x') . the mean gradient at ``steps`` midpoints of the path."""
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    total = np.zeros_like(inputs[0])
    chunk = max(1, min(CHUNK, TOKENS_PER_PASS // inputs.shape[1]))  # long inputs: fewer points per pass
    for start in range(0, steps, chunk):
        a = alphas[start:start + chunk, None, None]
        points = baseline + a * (inputs - baseline)
        _, grads = model.embedding_gradients(_repeat(batch, len(a)), points.astype(np.float32), np.repeat(weights, len(a), axis=0))
        total += grads.sum(axis=0)
    return ((inputs[0] - baseline[0]) * total / steps).sum(axis=-1)


def _repeat(batch: dict, n: int) -> dict:
    return {k: np.repeat(v, n, axis=0) for k, v in batch.items()}


def render_html(result: dict[str, Any]) -> str:
    """The tokens shaded by attribution (green for, red against the target), offline, one file."""
    scale = max((abs(a) for a in result["attributions"]), default=0.0) or 1.0
    spans = []
    for token, value in zip(result["tokens"], result["attributions"]):
        alpha = min(1.0, abs(value) / scale)
        colour = f"rgba(44,160,44,{alpha:.3f})" if value >= 0 else f"rgba(214,39,40,{alpha:.3f})"
        spans.append(f'<span class="token" title="{value:+.4f}" style="background:{colour}">{html.escape(token)}</span>')
    text = result["text"] if isinstance(result["text"], str) else " / ".join(result["text"])
    return _PAGE.format(target=html.escape(result["target"]), text=html.escape(text), tokens=" ".join(spans),
                        gap=result["completeness_gap"], tolerance=result["tolerance"], steps=result["steps"],
                        backend=html.escape(str(result.get("backend"))))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Token attributions: {target}</title>
<style>body {{ font-family: sans-serif; margin: 16px; color: #222; }}
.token {{ padding: 2px 3px; margin: 1px; border-radius: 3px; line-height: 2; }}</style></head>
<body><h3>Token attributions for {target}</h3><p>{text}</p><p>{tokens}</p>
<p style="color:#666">Integrated gradients on the word embeddings ({steps} steps, [PAD] baseline; backend {backend}).
Green tokens raise the score, red ones lower it; hover for the value. Completeness gap {gap} (tolerance {tolerance}).</p>
</body></html>
"""
