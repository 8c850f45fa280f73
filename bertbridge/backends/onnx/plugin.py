"""Entry point ``bertbridge.backends: onnx``. Importing this never imports onnxruntime."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_backends(registry) -> None:
    from .backend import OnnxBackend

    registry.add(OnnxBackend())
