"""A ``dist_sync`` scheduler or parameter server: ``DMLC_ROLE=scheduler|server python -m
bertbridge.backends.mxnet.ps_node`` (what :func:`.launch.process_plan` starts).

MXNet 1.9 does the work on import: ``mxnet.kvstore.kvstore_server`` sees a non-worker
``DMLC_ROLE``, creates the ``dist`` kvstore and runs the server (or scheduler) loop, then
calls ``sys.exit()`` once the workers have left the job (the last worker's kvstore tells
the servers to stop). Without an optimizer on the kvstore (bertbridge sets none) a
``dist_sync`` server answers each round of pushes with their sum.
"""

from __future__ import annotations

import os
import sys

from .launch import SCHEDULER, SERVER, missing_variables, resolve_hosts


def main() -> int:
    role = os.environ.get("DMLC_ROLE")
    if role not in (SCHEDULER, SERVER):
        print(f"bertbridge: error: {__name__} runs a dist_sync scheduler or server; DMLC_ROLE is {role!r} "
              f"(expected {SCHEDULER!r} or {SERVER!r}).", file=sys.stderr)
        return 2
    missing = missing_variables(os.environ)
    if missing:
        print(f"bertbridge: error: the {role} needs {', '.join(missing)} in its environment.", file=sys.stderr)
        return 2
    resolve_hosts(os.environ)
    from ._mx import mxnet_module

    mx = mxnet_module()  # runs the server/scheduler loop and exits when the job ends
    # Only reached if an MXNet build does not start the loop on import: start it here.
    from mxnet.kvstore.kvstore_server import KVStoreServer

    KVStoreServer(mx.kv.create("dist")).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
