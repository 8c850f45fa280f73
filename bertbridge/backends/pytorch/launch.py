"""torchrun's environment contract, without importing torch: who is a worker, and what the
local launcher (and a SageMaker instance) gives each worker."""

from __future__ import annotations

import os
from typing import Mapping

from bertbridge.core.distributed.collective import WORKER, Cluster, Proc, threads_per_worker

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun(environ: Mapping[str, str]) -> bool:
    return all(environ.get(k) for k in TORCHRUN_VARIABLES)


def process_plan(cluster: Cluster) -> list[Proc]:
    """One worker per local rank, with the variables ``torchrun`` gives its workers."""
    master_port = str(cluster.port(0))
    common = {
        "WORLD_SIZE": str(cluster.world_size), "LOCAL_WORLD_SIZE": str(cluster.processes_per_host),
        "GROUP_RANK": str(cluster.host_index), "MASTER_ADDR": cluster.hosts[0], "MASTER_PORT": master_port,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(threads_per_worker(cluster.processes_per_host)),
    }
    return [
        Proc(WORKER, {**common, "RANK": str(cluster.rank(i)), "LOCAL_RANK": str(i)}, rank=cluster.rank(i))
        for i in range(cluster.processes_per_host)
    ]
