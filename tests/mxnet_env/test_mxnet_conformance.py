"""The backend conformance suite (bertbridge.testing.conformance) on MXNet, in the MXNet environment.

Cross-backend logits are checked against the numpy reference here, and against PyTorch through the
main environment's Python (BERTBRIDGE_PYTORCH_PYTHON, or .venv) when it exists; so is the AdamW step.
TensorFlow is left out here (importing it in that Python costs ~10 s): TensorFlow artifacts are opened
by MXNet in TestTensorFlow (tests/test_backend_conformance.py), and an MXNet-trained artifact by
TensorFlow in tests/test_mxnet_parity.py. Set BERTBRIDGE_TENSORFLOW_PYTHON to add it.

Named to run after test_debugger.py: the MXNet debugger records no training loss once a process has
made 10 or more Gluon loss blocks (smdebug's default "losses" regex, ".*loss._(?!input).*output",
allows a one-digit block number only), and this suite makes more than 10. Rename freely once
bertbridge/backends/mxnet/debugger.py includes its loss block by name.
"""

from pathlib import Path

from bertbridge.testing import BackendConformance

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / ".venv" / "bin" / "python")


class TestMXNet(BackendConformance):
    backend = "mxnet"
    mixed_precision = False  # refused up front: "set training.mixed_precision: false"
    interpreters = {"pytorch": MAIN}
