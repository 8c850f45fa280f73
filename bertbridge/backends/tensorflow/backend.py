"""TensorFlow backend declaration. It registers and reports whether TensorFlow is
installed; no task is implemented yet, so training or loading with it raises
a clear "cannot do ... yet" error from the core contract."""

from __future__ import annotations

from bertbridge.core.backend import Backend


class TensorFlowBackend(Backend):
    name = "tensorflow"
    extra = "tensorflow"
    requires = ("tensorflow",)
    distributions = ("tensorflow", "tensorflow-cpu")
    tasks = ()
