"""Entry point ``bertbridge.backends: pytorch``. Importing this never imports torch."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_backends(registry) -> None:
    from .backend import PyTorchBackend

    registry.add(PyTorchBackend())
