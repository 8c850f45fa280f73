"""MXNet's ``dist_sync`` kvstore environment contract (DMLC / ps-lite), without importing MXNet:
who is a worker, and which processes (with which environment) one host of a job starts.

A ``dist_sync`` job has one *scheduler* (on the first host, at ``DMLC_PS_ROOT_URI`` :
``DMLC_PS_ROOT_PORT``), ``DMLC_NUM_SERVER`` parameter *servers* (one per host here) and
``DMLC_NUM_WORKER`` training *workers*; every process finds the others through the
scheduler. ps-lite numbers the workers in the order they reach the scheduler, so bertbridge's
plan also gives each worker its planned rank in ``BERTBRIDGE_RANK`` (the rank it shards by
and that error messages name); without it (SageMaker's own MXNet parameter-server launcher
sets only ``DMLC_*``) the kvstore's rank is used.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping, MutableMapping

from bertbridge.core.distributed.collective import WORKER, Cluster, Proc, threads_per_worker

RANK_VARIABLE = "BERTBRIDGE_RANK"
LOCAL_RANK_VARIABLE = "BERTBRIDGE_LOCAL_RANK"
PS_NODE_MODULE = "bertbridge.backends.mxnet.ps_node"
DMLC_VARIABLES = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")
SCHEDULER, SERVER = "scheduler", "server"


def launched_by_dmlc(environ: Mapping[str, str]) -> bool:
    """True in a ``dist_sync`` training worker (``DMLC_ROLE=worker``)."""
    return environ.get("DMLC_ROLE") == WORKER


def process_plan(cluster: Cluster) -> list[Proc]:
    """This host's processes: the scheduler (first host only), one parameter server, and
    ``processes_per_host`` workers, each with the ``DMLC_*`` variables ps-lite reads.

    No ps-lite heartbeat is configured: in MXNet 1.9's ps-lite heartbeats only let a restarted
    node replace a dead one, they never fail the job; bertbridge's launcher (or SageMaker, across
    hosts) stops the job when a process dies, and the collective bounds each wait by
    ``distribution.timeout``."""
    common = {
        "DMLC_PS_ROOT_URI": cluster.hosts[0],
        "DMLC_PS_ROOT_PORT": str(cluster.port(0)),
        "DMLC_NUM_SERVER": str(len(cluster.hosts)),
        "DMLC_NUM_WORKER": str(cluster.world_size),
        "DMLC_NODE_HOST": cluster.host,
    }
    helper = {**common, "OMP_NUM_THREADS": "1"}  # the servers only add arrays
    plan = []
    if cluster.host_index == 0:
        plan.append(Proc(SCHEDULER, {**helper, "DMLC_ROLE": SCHEDULER}, module=PS_NODE_MODULE))
    plan.append(Proc(SERVER, {**helper, "DMLC_ROLE": SERVER}, module=PS_NODE_MODULE))
    threads = os.environ.get("OMP_NUM_THREADS") or str(threads_per_worker(cluster.processes_per_host))
    for i in range(cluster.processes_per_host):
        env = {**common, "DMLC_ROLE": WORKER, "OMP_NUM_THREADS": threads,
               RANK_VARIABLE: str(cluster.rank(i)), LOCAL_RANK_VARIABLE: str(i)}
        plan.append(Proc(WORKER, env, rank=cluster.rank(i)))
    return plan


def planned_rank(environ: Mapping[str, str]) -> "int | None":
    """The rank bertbridge's plan gave this worker, or None (then the kvstore's rank counts)."""
    value = environ.get(RANK_VARIABLE)
    return int(value) if value not in (None, "") else None


def missing_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``DMLC_*`` variables ps-lite needs that ``environ`` lacks."""
    return [k for k in DMLC_VARIABLES if not environ.get(k)]


def resolve_hosts(environ: MutableMapping[str, str]) -> None:
    """Replace host names in ``DMLC_PS_ROOT_URI`` and ``DMLC_NODE_HOST`` by their IPv4 addresses:
    ps-lite binds its sockets to these names, and ZeroMQ binds to addresses only (SageMaker's
    hosts are ``algo-1``, ``algo-2``, ...). Names that do not resolve are left as they are."""
    for key in ("DMLC_PS_ROOT_URI", "DMLC_NODE_HOST"):
        host = environ.get(key)
        if not host:
            continue
        try:
            socket.inet_aton(host)
            continue  # already an address
        except OSError:
            pass
        try:
            environ[key] = socket.gethostbyname(host)
        except OSError:
            pass
