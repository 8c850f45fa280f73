"""Data-parallel training, the framework-neutral part.

A backend runs data-parallel training on its framework's own engine; core only needs
three things from it, whatever the engine:

* a :class:`Collective`, joined from the environment the engine's launcher sets
  (``torchrun``'s ``RANK``/``WORLD_SIZE``/``MASTER_*``, ``TF_CONFIG``, ``DMLC_*``): the
  worker's rank and a small ``all_reduce_sum`` that the loop uses for logged losses and
  to share rank 0's early-stopping decision;
* a model whose :meth:`~bertbridge.core.backend.TrainableModel.distribute` makes
  :meth:`~bertbridge.core.backend.TrainableModel.step` sum gradients across workers;
* :meth:`~bertbridge.core.backend.Backend.process_plan`: the processes (and their
  environments) one host starts, which :mod:`bertbridge.core.distributed.launcher` runs locally and
  the SageMaker entry points run per instance.

How the loop shards (:func:`shard`): every worker draws the same batches in the same
order, and worker ``r`` of ``n`` takes the ``r``-th of ``n`` nearly equal slices of each
one, weighting its loss by its share of the global batch. Summed over workers, the
gradient is exactly the single-process one.
"""

from __future__ import annotations

import abc
import os
import socket
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from bertbridge.core.errors import SpecError

WORKER = "worker"
JOB_VARIABLE = "BERTBRIDGE_JOB"
"""Set (to the launcher's pid) in every process bertbridge's launcher starts."""


class Collective(abc.ABC):
    """This process's place in a data-parallel job, and the engine's collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0, the worker that logs, evaluates, checkpoints and saves."""
        return self.rank == 0

    @abc.abstractmethod
    def all_reduce_sum(self, values: Sequence[float]) -> np.ndarray:
        """The element-wise sum of ``values`` over all workers (float64). Every worker must
        call it, in the same order, or the job waits until ``distribution.timeout``."""

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every worker."""
        return bool(self.all_reduce_sum([float(flag) if self.is_main else 0.0])[0] > 0.5)

    def close(self) -> None:
        """Leave the job: wait until every worker got here (rank 0 calls it after saving the
        model, so no worker exits while rank 0 still needs the job) and shut the engine down."""


class SingleProcess(Collective):
    """The collective of ordinary, one-process training."""

    def all_reduce_sum(self, values: Sequence[float]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)


def shard(index: np.ndarray, collective: Collective) -> np.ndarray:
    """This worker's slice of one batch's example indices (possibly empty)."""
    if collective.world_size == 1:
        return index
    return np.array_split(index, collective.world_size)[collective.rank]


@dataclass(frozen=True)
class Proc:
    """One process of a host's share of a job: a training ``worker`` (with its global
    ``rank``) or an engine helper (e.g. MXNet's ``scheduler`` and ``server``) that runs
    ``module`` with ``python -m``. ``env`` is added to the launcher's environment."""

    role: str
    env: Mapping[str, str]
    rank: Optional[int] = None
    module: Optional[str] = None

    @property
    def name(self) -> str:
        return f"rank {self.rank}" if self.role == WORKER else f"the {self.role}"


@dataclass
class Cluster:
    """Where a job runs: ``hosts`` (the first one coordinates), this host's index and
    ``processes_per_host`` workers on each. :meth:`port` gives the ``i``-th TCP port of the
    job: free ports chosen on the spot for a one-host job, ``base_port + i`` otherwise (so
    every host computes the same ones)."""

    hosts: Sequence[str]
    host_index: int
    processes_per_host: int
    base_port: Optional[int] = None
    timeout: int = 300
    _ports: list = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.processes_per_host * len(self.hosts)

    @property
    def host(self) -> str:
        return self.hosts[self.host_index]

    def rank(self, local_rank: int) -> int:
        return self.host_index * self.processes_per_host + local_rank

    def port(self, i: int) -> int:
        while len(self._ports) <= i:
            self._ports.append(self.base_port + len(self._ports) if self.base_port else free_port())
        return self._ports[i]

    @property
    def ports(self) -> list[int]:
        """The ports handed out so far."""
        return list(self._ports)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def local_cluster(processes: int, timeout: int = 300) -> Cluster:
    """``processes`` workers on this machine, on loopback ports."""
    return Cluster(hosts=("127.0.0.1",), host_index=0, processes_per_host=processes, timeout=timeout)


def sagemaker_cluster(processes_per_host: int, timeout: int, base_port: int,
                      environ: Optional[Mapping[str, str]] = None) -> Cluster:
    """The cluster of a SageMaker training job, from ``SM_HOSTS`` and ``SM_CURRENT_HOST``
    (one instance: loopback, free ports)."""
    import json

    env = os.environ if environ is None else environ
    hosts = json.loads(env.get("SM_HOSTS") or "[]") or ["algo-1"]
    current = env.get("SM_CURRENT_HOST") or hosts[0]
    if current not in hosts:
        raise SpecError(f"SM_CURRENT_HOST={current!r} is not in SM_HOSTS={hosts}; the container environment is inconsistent.")
    if len(hosts) == 1:
        return local_cluster(processes_per_host, timeout)
    return Cluster(hosts=tuple(sorted(hosts)), host_index=sorted(hosts).index(current),
                   processes_per_host=processes_per_host, base_port=base_port, timeout=timeout)


def threads_per_worker(processes_per_host: int) -> int:
    """CPU threads each of a host's workers should use, so that together they fill the
    cores this process may use without oversubscribing them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // processes_per_host)
