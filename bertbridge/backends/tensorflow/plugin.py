"""Entry point ``bertbridge.backends: tensorflow``. Importing this never imports TensorFlow."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_backends(registry) -> None:
    from .backend import TensorFlowBackend

    registry.add(TensorFlowBackend())
