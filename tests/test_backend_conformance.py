"""The backend conformance suite (bertbridge.testing.conformance) on the built-in training backends.

PyTorch and TensorFlow run it here. MXNet needs numpy<2, so it runs the suite in its own
environment (tests/mxnet_env/test_mxnet_conformance.py), but it still reads what PyTorch and
TensorFlow save here: through that environment's Python (BERTBRIDGE_MXNET_PYTHON, which make test
sets, or .venv-mxnet), as the CLI forwards to it. Without it, MXNet is left out of the comparisons.
"""

from pathlib import Path

from bertbridge.testing import BackendConformance

REPO = Path(__file__).resolve().parents[1]
OTHER_ENVIRONMENTS = {"mxnet": str(REPO / ".venv-mxnet" / "bin" / "python")}


class TestPyTorch(BackendConformance):
    backend = "pytorch"
    interpreters = OTHER_ENVIRONMENTS


class TestTensorFlow(BackendConformance):
    backend = "tensorflow"
    interpreters = OTHER_ENVIRONMENTS
