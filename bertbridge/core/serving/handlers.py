"""SageMaker inference-toolkit serving functions, the same for every backend.

The PyTorch and MXNet serving containers (and ``bertbridge serve``) call these four
functions; :func:`bertbridge.load` picks the backend from the model's manifest, so
one implementation serves every framework. Point the container's ``code/inference.py``
at them::

    from bertbridge.core.serving.handlers import model_fn, input_fn, predict_fn, output_fn
"""

from __future__ import annotations

from typing import Any, Optional, Union

from bertbridge.core.api import load
from bertbridge.core.errors import BertbridgeError, SpecError
from bertbridge.core.serving import protocol as serving
from bertbridge.core.task import Predictor


def _client_error(exc: Exception) -> Exception:
    """The inference toolkit answers 500 for any exception except its own error type, which
    carries a status: use it when the toolkit is installed (inside the SageMaker containers)."""
    status, message = (exc.status, exc.message) if isinstance(exc, serving.RequestError) else (400, str(exc))
    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError
    except ImportError:
        return exc
    return GenericInferenceToolkitError(status, message)


def check_max_inputs() -> None:
    """Refuse to start with a ``BERTBRIDGE_MAX_INPUTS`` that is not a count (else every request would fail)."""
    try:
        serving.max_inputs()
    except serving.RequestError as exc:
        raise SpecError(exc.message) from None


def model_fn(model_dir: str) -> Predictor:
    """Load the model folder (``/opt/ml/model`` in a container), whatever its task."""
    check_max_inputs()
    return load(model_dir)


def input_fn(request_body: Union[bytes, str], request_content_type: Optional[str]) -> list:
    """Parse the body into request items; a 4xx error if malformed."""
    try:
        return serving.parse_items(request_body, request_content_type)
    except serving.RequestError as exc:
        raise _client_error(exc) from None


def predict_fn(data: list, model: Predictor) -> list[dict[str, Any]]:
    """Check the items against the model (texts, pairs, or question/context objects) and predict them."""
    try:
        return model.predict(model.normalize_request(data))
    except (serving.RequestError, BertbridgeError) as exc:
        raise _client_error(exc) from None


def output_fn(prediction: list[dict[str, Any]], accept: Optional[str]) -> tuple[str, str]:
    """``(body, content_type)`` for the ``Accept`` header (JSON or JSON lines)."""
    try:
        return serving.format_response(prediction, accept)
    except serving.RequestError as exc:
        raise _client_error(exc) from None
