"""SageMaker inference-toolkit serving functions, the same for every backend.

The PyTorch and MXNet serving containers (and ``bertbridge serve``) call these four
functions; :func:`bertbridge.load` picks the backend from the model's manifest, so
one implementation serves every framework. Point the container's ``code/inference.py``
at them::

    from bertbridge.core.handlers import model_fn, input_fn, predict_fn, output_fn
"""

from __future__ import annotations

from typing import Any, Optional, Union

from . import serving
from .classifier import TextClassifier


def model_fn(model_dir: str) -> TextClassifier:
    """Load the model folder (``/opt/ml/model`` in a container)."""
    from .api import load

    return load(model_dir)


def input_fn(request_body: Union[bytes, str], request_content_type: Optional[str]) -> list:
    """Parse the body into request items; :class:`~bertbridge.core.serving.RequestError` (4xx) if malformed."""
    return serving.parse_items(request_body, request_content_type)


def predict_fn(data: list, model: TextClassifier) -> list[dict[str, Any]]:
    """Check the items against the model (single texts or pairs) and predict them."""
    inputs = serving.normalize_inputs(data, model.manifest.text_pair)
    return model.predict(inputs)


def output_fn(prediction: list[dict[str, Any]], accept: Optional[str]) -> tuple[str, str]:
    """``(body, content_type)`` for the ``Accept`` header (JSON or JSON lines)."""
    return serving.format_response(prediction, accept)
