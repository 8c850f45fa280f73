"""Import MXNet 1.9 on a modern numpy.

MXNet 1.9.1 still refers to ``numpy.bool``, an alias numpy 1.24 removed; it must
exist before ``import mxnet``. Every module of this backend imports MXNet through
:func:`mxnet_module` so the shim is applied exactly once, and only when MXNet is used.
"""

from __future__ import annotations

import os


def mxnet_module():
    import numpy

    if "bool" not in numpy.__dict__:
        numpy.bool = bool  # the alias MXNet 1.9 expects (removed in numpy 1.24)
    # MXNet sizes its OpenMP pool from the host's cores, not the ones this process may use; in a
    # container or a cgroup that oversubscribes the CPU and makes every operator slower (2x here).
    if "OMP_NUM_THREADS" not in os.environ and hasattr(os, "sched_getaffinity"):
        os.environ["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))
    import mxnet

    return mxnet
