"""SageMaker TensorFlow Serving handler for a SavedModel export whose answers need bertbridge's
own code around the model: question answering, and text classification with ``task.long_text``.

The container calls ``handler(data, context)`` for each request (instead of the
``input_handler``/``output_handler`` pair, which cannot see the request when the answer
is picked). It answers exactly as ``bertbridge serve`` does, through the model's task
predictor (from the task registry, as ``bertbridge.load`` builds it) over TF Serving's REST
API (``context.rest_uri``, signature ``serving_default``): a QA context is cut into the
model's windows (a context longer than one window gets several, so it is answered, not
truncated; a question longer than ``max_question_length`` tokens is cut to it) and the
answer is picked by bertbridge's post-processing; a long text is cut into its windows and
their logits combined. The bertbridge package beside this file (pure Python) does that.
Client mistakes raise ``ValueError`` with the one-line reason (the TF Serving container
answers a handler exception with status 500 and ``{"error": "<reason>"}``).
"""

import json
import os
import sys
import urllib.request

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # the bertbridge package copied beside this file

from bertbridge.core.backend import InferenceModel  # noqa: E402
from bertbridge.core.errors import BertbridgeError  # noqa: E402
from bertbridge.core.io.artifacts import Manifest  # noqa: E402
from bertbridge.core.plugins.registry import tasks  # noqa: E402
from bertbridge.core.serving import protocol  # noqa: E402
from bertbridge.core.text.tokenize import TextEncoder  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TIMEOUT_S = 60.0
_PREDICTORS = {}


class TFServingModel(InferenceModel):
    """The inference contract over TF Serving's REST predict API: one POST per batch of windows
    (a classifier's ``logits``; a span model's ``start_logits`` and ``end_logits``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def logits(self, batch):
        body = json.dumps({"signature_name": "serving_default",
                           "inputs": {k: np.asarray(batch[k]).tolist() for k in INPUTS}}).encode("utf-8")
        request = urllib.request.Request(self.uri, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            outputs = json.loads(response.read())["outputs"]
        if "logits" in outputs:
            return np.asarray(outputs["logits"], dtype=np.float32)
        return np.stack([np.asarray(outputs["start_logits"], dtype=np.float32),
                         np.asarray(outputs["end_logits"], dtype=np.float32)], axis=-1)

    def save(self, directory):
        raise NotImplementedError("a TF Serving endpoint cannot be saved from its handler.")


def _predictor(uri: str):
    if uri not in _PREDICTORS:
        manifest = Manifest.read(_HERE)
        task = tasks().get(manifest.task)
        _PREDICTORS[uri] = task.predictor(TFServingModel(uri), TextEncoder.from_pretrained(_HERE), manifest, batch_size=64)
    return _PREDICTORS[uri]


def handler(data, context):
    """Request body -> ``(body, content_type)`` in the bertbridge response shape."""
    body = data.read() if hasattr(data, "read") else data
    try:
        items = protocol.parse_items(body, getattr(context, "request_content_type", None))
        protocol.format_response([], getattr(context, "accept_header", None))  # an unusable Accept fails before inference
        predictor = _predictor(context.rest_uri)
        answers = predictor.predict(predictor.normalize_request(items))
        return protocol.format_response(answers, getattr(context, "accept_header", None))
    except protocol.RequestError as exc:
        raise ValueError(f"{exc.status}: {exc.message}") from None
    except BertbridgeError as exc:
        raise ValueError(f"400: {exc}") from None
