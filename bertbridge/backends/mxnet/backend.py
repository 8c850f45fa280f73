"""MXNet backend declaration. It registers and reports whether MXNet is
installed; no task is implemented yet, so training or loading with it raises
a clear "cannot do ... yet" error from the core contract."""

from __future__ import annotations

from bertbridge.core.backend import Backend


class MXNetBackend(Backend):
    name = "mxnet"
    extra = "mxnet"
    requires = ("mxnet",)
    distributions = ("mxnet",)
    tasks = ()
    sagemaker_image = {"framework": "mxnet", "version": "1.9", "py_version": "py38"}
