"""SageMaker TensorFlow Serving handler for a bertbridge question-answering SavedModel export.

The container calls ``handler(data, context)`` for each request (instead of the
``input_handler``/``output_handler`` pair, which cannot see the request when the answer
is picked). It answers exactly as ``bertbridge serve`` does: the request is parsed by the
serving contract, each context is cut into the model's windows (a context longer than
one window gets several, so it is answered, not truncated; a question longer than
``max_question_length`` tokens is cut to it), the windows go to TF Serving's REST API
(``context.rest_uri``, signature ``serving_default``: ``start_logits``/``end_logits``) and
the answer is picked by bertbridge's post-processing. The bertbridge package beside this
file (pure Python) does the windowing and post-processing. Client mistakes raise
``ValueError`` with the one-line reason (the TF Serving container answers a handler
exception with status 500 and ``{"error": "<reason>"}``).
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
from bertbridge.core.serving import protocol  # noqa: E402
from bertbridge.core.tasks.qa.predictor import QuestionAnswerer  # noqa: E402
from bertbridge.core.text.tokenize import TextEncoder  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TIMEOUT_S = 60.0
_ANSWERERS = {}


class TFServingModel(InferenceModel):
    """The inference contract over TF Serving's REST predict API: one POST per batch of windows."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def logits(self, batch):
        body = json.dumps({"signature_name": "serving_default",
                           "inputs": {k: np.asarray(batch[k]).tolist() for k in INPUTS}}).encode("utf-8")
        request = urllib.request.Request(self.uri, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            outputs = json.loads(response.read())["outputs"]
        return np.stack([np.asarray(outputs["start_logits"], dtype=np.float32),
                         np.asarray(outputs["end_logits"], dtype=np.float32)], axis=-1)

    def save(self, directory):
        raise NotImplementedError("a TF Serving endpoint cannot be saved from its handler.")


def _answerer(uri: str) -> QuestionAnswerer:
    if uri not in _ANSWERERS:
        _ANSWERERS[uri] = QuestionAnswerer(TFServingModel(uri), TextEncoder.from_pretrained(_HERE), Manifest.read(_HERE))
    return _ANSWERERS[uri]


def handler(data, context):
    """Request body -> ``(body, content_type)`` in the bertbridge response shape."""
    body = data.read() if hasattr(data, "read") else data
    try:
        items = protocol.parse_items(body, getattr(context, "request_content_type", None))
        protocol.format_response([], getattr(context, "accept_header", None))  # an unusable Accept fails before inference
        answerer = _answerer(context.rest_uri)
        answers = answerer.predict(answerer.normalize_request(items))
        return protocol.format_response(answers, getattr(context, "accept_header", None))
    except protocol.RequestError as exc:
        raise ValueError(f"{exc.status}: {exc.message}") from None
    except BertbridgeError as exc:
        raise ValueError(f"400: {exc}") from None
