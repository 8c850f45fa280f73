"""Entry point ``bertbridge.backends: mxnet``. Importing this never imports MXNet."""

from bertbridge.core.hookspecs import hookimpl


@hookimpl
def bertbridge_register_backends(registry) -> None:
    from .backend import MXNetBackend

    registry.add(MXNetBackend())
