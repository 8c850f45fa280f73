"""``TF_CONFIG``, MultiWorkerMirroredStrategy's environment contract, without importing
TensorFlow: who is a worker (and which rank), and what the local launcher (and a SageMaker
instance) gives each worker.

``TF_CONFIG`` is JSON: ``{"cluster": {"chief": ["host:port"], "worker": ["host:port", ...]},
"task": {"type": "worker", "index": 1}}``. Ranks follow MultiWorkerMirroredStrategy's own
numbering: the chief (if any) is rank 0 and the workers follow in order.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Mapping, Optional

from bertbridge.core.distributed.collective import WORKER, Cluster, Proc, threads_per_worker
from bertbridge.core.errors import DistributedError

VARIABLE = "TF_CONFIG"
TRAINING_JOBS = ("chief", "worker")


@dataclass(frozen=True)
class TFConfig:
    """A parsed ``TF_CONFIG`` that makes this process a training task."""

    cluster: dict  # job name -> list of "host:port"
    task_type: str
    task_index: int

    @property
    def addresses(self) -> list[str]:
        """Every training task's address, in rank order (chief first)."""
        return [a for job in TRAINING_JOBS for a in self.cluster.get(job, [])]

    @property
    def world_size(self) -> int:
        return len(self.addresses)

    @property
    def rank(self) -> int:
        if self.task_type == "chief":
            return self.task_index
        return len(self.cluster.get("chief", [])) + self.task_index

    @property
    def address(self) -> str:
        return self.addresses[self.rank]

    @property
    def local_rank(self) -> int:
        """How many training tasks before this one run on the same host."""
        host = _host(self.address)
        return sum(_host(a) == host for a in self.addresses[: self.rank])


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _bad(problem: str) -> DistributedError:
    return DistributedError(
        f"{VARIABLE} is malformed: {problem}. It must be JSON like "
        '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}} '
        f"(unset {VARIABLE} to train in one process)."
    )


def parse_tf_config(environ: Mapping[str, str]) -> Optional[TFConfig]:
    """The training task ``environ``'s ``TF_CONFIG`` describes, or None when there is none
    (unset, empty, or without a cluster of chief/worker tasks). Raises
    :class:`~bertbridge.core.errors.DistributedError` for a malformed one."""
    raw = environ.get(VARIABLE, "")
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _bad(f"it is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise _bad(f"it is a JSON {type(config).__name__}, not an object")
    cluster = config.get("cluster") or {}
    if not isinstance(cluster, dict):
        raise _bad('"cluster" must be an object mapping job names to lists of "host:port"')
    for job, tasks in cluster.items():
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise _bad(f'cluster job {job!r} must be a list of "host:port" strings, got {tasks!r}')
        for address in tasks:
            host, sep, port = address.rpartition(":")
            if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
                raise _bad(f'cluster job {job!r} has {address!r}, which is not "host:port"')
    if not any(cluster.get(job) for job in TRAINING_JOBS):
        if cluster:
            raise _bad(f"its cluster has no chief or worker task (jobs: {', '.join(sorted(cluster))})")
        return None  # "{}" or a task alone: not a cluster (TensorFlow treats it as local training too)
    if "ps" in cluster:
        raise _bad("its cluster has 'ps' tasks, which is ParameterServerStrategy's layout; bertbridge trains with "
                   "MultiWorkerMirroredStrategy (chief and worker tasks only)")
    if len(cluster.get("chief", [])) > 1:
        raise _bad(f"its cluster has {len(cluster['chief'])} chief tasks; there can be one at most")
    task = config.get("task")
    if not isinstance(task, dict):
        raise _bad('"task" is missing: give {"type": "worker", "index": N} for this process')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in TRAINING_JOBS:
        raise _bad(f"task type {task_type!r} is not one bertbridge runs; it must be 'chief' or 'worker'")
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise _bad(f"task index {index!r} is not a non-negative integer")
    tasks = cluster.get(task_type, [])
    if index >= len(tasks):
        raise _bad(f"task {task_type}:{index} is not in the cluster, which has {len(tasks)} {task_type} task(s)")
    return TFConfig({job: list(cluster[job]) for job in cluster}, task_type, index)


def launched_by_tf_config(environ: Mapping[str, str]) -> bool:
    """True when ``environ`` has a ``TF_CONFIG`` naming a cluster of chief/worker tasks and this
    process's task in it."""
    return parse_tf_config(environ) is not None


def process_plan(cluster: Cluster) -> list[Proc]:
    """One worker per local rank, each with its ``TF_CONFIG`` (task index = rank; host ``h``'s
    ``i``-th worker listens on ``port(i)``) and a share of this host's CPU threads."""
    addresses = [f"{h}:{cluster.port(i)}" for h in cluster.hosts for i in range(cluster.processes_per_host)]
    threads = str(threads_per_worker(cluster.processes_per_host))
    common = {
        name: os.environ.get(name) or threads
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
    }
    common["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL") or "2"  # no C++ INFO/WARNING chatter
    plan = []
    for i in range(cluster.processes_per_host):
        rank = cluster.rank(i)
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}
        plan.append(Proc(WORKER, {**common, VARIABLE: json.dumps(tf_config)}, rank=rank))
    return plan
