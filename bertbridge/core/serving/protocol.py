"""The serving contract: request shapes, response shape and client errors, shared by every
backend's serving functions and by :class:`~bertbridge.core.tasks.classification.predictor.TextClassifier`.

This module imports only the standard library and numpy, so exports copy it
verbatim into their ``code/`` folder (as ``bertbridge_serving.py``) for serving
containers where bertbridge itself is not installed.

Requests (``Content-Type``; parameters such as ``; charset=utf-8`` are honoured):

* ``application/json``: ``"text"``, ``["text", ...]``, ``{"inputs": "text" | [...]}``,
  ``{"instances": [...]}``, ``{"text": "...", "text_pair": "..."}`` or a list of such objects.
  Sentence-pair models take ``["a", "b"]`` pairs or ``{"text", "text_pair"}`` objects.
* ``application/jsonlines``: one of the above items per line.
* ``text/csv``: one row per input; one column (text) or two (text, text_pair).

Responses (``Accept``: ``application/json`` (default) or ``application/jsonlines``)::

    {"predictions": [{"label": "positive", "score": 0.97, "probabilities": {"negative": 0.03, "positive": 0.97}}]}

Multi-label models answer ``{"labels": [...], "probabilities": {...}}`` per input.

Question-answering models take ``{"question": "...", "context": "..."}`` objects (or
``[question, context]`` pairs, or csv rows ``question,context``), one or a list, and
answer ``{"answer": "...", "score": 0.91, "start": 16, "end": 21}`` per question
(character offsets into the context, end exclusive; ``""`` and -1/-1 for no answer).
Client mistakes raise :class:`RequestError` with an HTTP status (400, 406, 413, 415)
and a JSON body ``{"error": {"status": ..., "message": ...}}``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any, Optional, Sequence, Union

import numpy as np

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson")
CSV = "text/csv"
MAX_INPUTS = 1024
MAX_INPUTS_ENV = "BERTBRIDGE_MAX_INPUTS"


def max_inputs() -> int:
    """Inputs one request may hold: ``BERTBRIDGE_MAX_INPUTS`` (0: no count limit, the body size bounds
    it; a batch transform sets this, since its requests are as many records as fit its payload
    size), else :data:`MAX_INPUTS`."""
    value = os.environ.get(MAX_INPUTS_ENV, "").strip()
    try:
        limit = int(value) if value else MAX_INPUTS
    except ValueError:
        limit = -1
    if limit < 0:
        raise RequestError(500, f"the server's {MAX_INPUTS_ENV}={value!r} is not a count: set it to 0 (no limit) or more.")
    return limit

Input = Union[str, tuple[str, str]]


class RequestError(ValueError):
    """A client mistake; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> str:
        return json.dumps({"error": {"status": self.status, "message": self.message}})


# -- requests ------------------------------------------------------------------------

def parse_content_type(value: Optional[str]) -> tuple[str, dict[str, str]]:
    """``"application/json; charset=utf-8"`` -> ``("application/json", {"charset": "utf-8"})``."""
    if not value:
        return JSON, {}
    mime, *params = [part.strip() for part in value.split(";")]
    parsed = {}
    for param in params:
        key, _, val = param.partition("=")
        parsed[key.strip().lower()] = val.strip().strip('"')
    return mime.lower(), parsed


def parse_request(body: Union[bytes, str], content_type: Optional[str], *, text_pair: bool = False) -> list[Input]:
    """The inputs of a request body; raises :class:`RequestError` for anything malformed."""
    return normalize_inputs(parse_items(body, content_type), text_pair)


def normalize_inputs(items: list, text_pair: bool) -> list[Input]:
    """Check parsed items against the model: texts, or (text, text_pair) tuples for pair models."""
    if isinstance(items, list) and text_pair and len(items) == 2 and all(isinstance(x, str) for x in items):
        items = [items]  # one bare pair
    return [normalize_input(item, i, text_pair) for i, item in enumerate(items)]


def parse_items(body: Union[bytes, str], content_type: Optional[str]) -> list:
    """Decode and split a request body into items (not yet checked against a model)."""
    mime, params = parse_content_type(content_type)
    if isinstance(body, bytes):
        charset = params.get("charset", "utf-8")
        try:
            text = body.decode(charset)
        except LookupError:
            raise RequestError(415, f"unknown charset {charset!r}; send UTF-8.") from None
        except UnicodeDecodeError as exc:
            raise RequestError(400, f"the body is not valid {charset} (byte {exc.start}); send UTF-8 text.") from None
    else:
        text = body
    if not text.strip():
        raise RequestError(400, "the request body is empty; send at least one text.")
    if mime == JSON:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(400, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
        except RecursionError:
            raise RequestError(400, "the JSON is nested too deeply; send a text or a flat list of texts.") from None
        items = _json_items(payload)
    elif mime in JSONLINES:
        items = []
        for n, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RequestError(400, f"line {n}: invalid JSON ({exc.msg}); send one JSON value per line.") from None
            except RecursionError:
                raise RequestError(400, f"line {n}: the JSON is nested too deeply.") from None
    elif mime == CSV:
        try:
            items = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
        except csv.Error as exc:
            raise RequestError(400, f"malformed CSV: {exc}.") from None
        items = [row[0] if len(row) == 1 else row for row in items]
    else:
        raise RequestError(415, f"unsupported Content-Type {mime!r}; use {JSON}, {JSONLINES[0]} or {CSV}.")
    if not items:
        raise RequestError(400, "no inputs in the request; send at least one text.")
    limit = max_inputs()
    if limit and len(items) > limit:
        raise RequestError(413, f"{len(items)} inputs in one request; send at most {limit}.")
    try:
        for i, item in enumerate(items):
            _check_unicode(item, i)
    except RecursionError:
        raise RequestError(400, "the JSON is nested too deeply; send a text or a flat list of texts.") from None
    return items


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(value: Any, i: int) -> None:
    """JSON's ``\\uXXXX`` escapes can spell half of a surrogate pair, which is not a character."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found:
            raise RequestError(400, f"input {i}: character {found.start()} is a lone UTF-16 surrogate "
                                    f"(\\u{ord(found.group()):04x}), which is not text. Escape a character beyond "
                                    "U+FFFF as a surrogate pair (\\ud83d\\ude00) or send it as UTF-8.")
    elif isinstance(value, dict):
        for v in value.values():
            _check_unicode(v, i)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_unicode(v, i)


def _json_items(payload: Any) -> list:
    if isinstance(payload, dict):
        for key in ("inputs", "instances"):
            if key in payload:
                return _json_items(payload[key])
        return [payload]
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, list):
        return payload
    raise RequestError(400, f"expected a text, a list of texts or an object with 'inputs', got {type(payload).__name__}.")


def normalize_input(item: Any, i: int, text_pair: bool) -> Input:
    """One input as a text or a (text, text_pair) tuple; ``i`` is its index for messages."""
    if isinstance(item, dict):
        if "text" not in item:
            raise RequestError(400, f"input {i}: an object needs a 'text' field (and 'text_pair' for pair models).")
        item = [item["text"], item["text_pair"]] if "text_pair" in item else item["text"]
    if isinstance(item, str):
        if text_pair:
            raise RequestError(400, f"input {i}: this model classifies sentence pairs; send [text, text_pair] or {{\"text\", \"text_pair\"}}.")
        return _non_empty(item, i)
    if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
        if not text_pair:
            raise RequestError(400, f"input {i}: this model classifies single texts; send a string, not a pair.")
        return (_non_empty(item[0], i), _non_empty(item[1], i))
    raise RequestError(400, f"input {i}: expected a string{' pair' if text_pair else ''}, got {type(item).__name__}.")


def normalize_qa_inputs(items: list) -> list[tuple[str, str]]:
    """Question-answering request items as (question, context) pairs."""
    if len(items) == 2 and all(isinstance(x, str) for x in items):
        items = [items]  # one bare [question, context]
    pairs = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            missing = [k for k in ("question", "context") if not isinstance(item.get(k), str)]
            if missing:
                raise RequestError(400, f"input {i}: needs string fields 'question' and 'context' (missing or not text: "
                                        f"{', '.join(missing)}).")
            item = (item["question"], item["context"])
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise RequestError(400, f"input {i}: this model answers questions; send {{\"question\": ..., \"context\": ...}} "
                                    f"or [question, context], got {type(item).__name__}.")
        question, context = item
        if not question.strip() or not context.strip():
            raise RequestError(400, f"input {i}: the {'question' if not question.strip() else 'context'} is empty.")
        pairs.append((question, context))
    return pairs


def qa_prediction(text: str, score: float, start: int, end: int) -> dict[str, Any]:
    return {"answer": text, "score": round(float(score), 6), "start": int(start), "end": int(end)}


def _non_empty(text: str, i: int) -> str:
    if not text.strip():
        raise RequestError(400, f"input {i}: the text is empty.")
    return text


# -- responses ---------------------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax (single-label) or sigmoid (multi-label) of (N, K) logits."""
    logits = np.asarray(logits, dtype=np.float32)
    return sigmoid(logits) if multi_label else softmax(logits)


def prediction(probs: np.ndarray, labels: Sequence[str], multi_label: bool, threshold: float = 0.5) -> dict[str, Any]:
    """The response item for one input's probabilities."""
    by_label = {label: float(p) for label, p in zip(labels, probs)}
    if multi_label:
        return {"labels": [label for label, p in by_label.items() if p >= threshold], "probabilities": by_label}
    best = int(np.argmax(probs))
    return {"label": labels[best], "score": float(probs[best]), "probabilities": by_label}


def response_type(accept: Optional[str]) -> str:
    """The media type to answer with: the first acceptable one in ``Accept`` (a comma-separated
    list, in order of preference; ``q`` weights of 0 exclude a type); ``*/*`` or none mean JSON."""
    if not accept or not accept.strip():
        return JSON
    ranked = []
    for position, part in enumerate(accept.split(",")):
        mime, params = parse_content_type(part)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranked.append((-q, position, mime))
    for _, _, mime in sorted(ranked):
        if mime in (JSON, "*/*", "application/*"):
            return JSON
        if mime in JSONLINES:
            return JSONLINES[0]
    raise RequestError(406, f"cannot answer with {accept!r}; accept {JSON} or {JSONLINES[0]}.")


def format_response(predictions: list[dict], accept: Optional[str] = None) -> tuple[str, str]:
    """``(body, content_type)`` for the ``Accept`` header (JSON or JSON lines)."""
    mime = response_type(accept)
    if mime == JSON:
        return json.dumps({"predictions": predictions}), JSON
    return "".join(json.dumps(p) + "\n" for p in predictions), mime
