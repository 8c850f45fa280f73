"""SageMaker TensorFlow Serving handlers for a bertbridge SavedModel export.

The container calls ``input_handler`` before TensorFlow Serving and
``output_handler`` after it. Requests and responses follow the bertbridge
serving contract (``bertbridge_serving.py`` beside this file), so this endpoint
answers exactly like the other backends. Client mistakes raise ``ValueError`` with
the one-line reason; the TF Serving container answers any handler exception with
status 500 and ``{"error": "<reason>"}`` (it has no way to return a 4xx from a handler).
"""

import json
import os

import numpy as np
from bertbridge_serving import RequestError, format_response, parse_request, prediction

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "bertbridge.json"), encoding="utf-8") as _fh:
    MANIFEST = json.load(_fh)
_TOKENIZER = None


def _tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(os.path.join(_HERE, "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=MANIFEST["max_seq_length"], strategy="longest_first")
        _TOKENIZER = tok
    return _TOKENIZER


def _features(inputs):
    encodings = _tokenizer().encode_batch([tuple(x) if isinstance(x, tuple) else x for x in inputs])
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        types[row, : len(e.ids)] = e.type_ids
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "token_type_ids": types.tolist()}


def input_handler(data, context):
    """Request body -> TF Serving REST request (columnar ``inputs`` for ``serving_default``)."""
    body = data.read() if hasattr(data, "read") else data
    try:
        inputs = parse_request(body, getattr(context, "request_content_type", None), text_pair=MANIFEST.get("text_pair", False))
        format_response([], getattr(context, "accept_header", None))  # reject an unusable Accept before inference
    except RequestError as exc:
        raise ValueError(f"{exc.status}: {exc.message}") from None
    return json.dumps({"signature_name": "serving_default", "inputs": _features(inputs)})


def output_handler(response, context):
    """TF Serving response -> ``(body, content_type)`` in the bertbridge response shape."""
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    outputs = json.loads(response.content)["outputs"]
    probs = np.asarray(outputs["probabilities"], dtype=np.float32)
    predictions = [
        prediction(row, MANIFEST["labels"], MANIFEST.get("multi_label", False), MANIFEST.get("threshold", 0.5))
        for row in probs
    ]
    try:
        return format_response(predictions, getattr(context, "accept_header", None))
    except RequestError as exc:
        raise ValueError(f"{exc.status}: {exc.message}") from None
