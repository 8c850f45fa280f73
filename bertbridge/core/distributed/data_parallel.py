"""How :func:`bertbridge.train` becomes a data-parallel job.

Three cases, decided before any data is read:

* the process was started by the engine's launcher (``torchrun``, a ``TF_CONFIG``, an
  MXNet ``DMLC_ROLE=worker``; locally by bertbridge itself, on SageMaker by the container
  or the entry point): it is one worker, and :func:`create_model` joins the job (``Backend.join_distributed``);
* the spec's ``distribution`` asks for more than one process and none of that is set: this
  process becomes the launcher (:func:`launch_locally`), starts the job on this machine,
  and returns when every worker has finished;
* otherwise: ordinary single-process training.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from bertbridge.core.distributed.collective import Cluster, Collective, local_cluster
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.spec import TaskSpec


def role(spec: TaskSpec, backend) -> str:
    """``worker``, ``launcher`` or ``single`` for this process (see the module docstring)."""
    if backend.distributed_engine and backend.launched_by_engine(os.environ):
        return "worker"
    if spec.distribution.world_size > 1:
        return "launcher"
    return "single"


def check(spec: TaskSpec, backend, role_: str) -> None:
    """Refuse, before any work, what a data-parallel run cannot do."""
    if role_ == "single":
        return
    dist = spec.distribution
    if not backend.distributed_engine:
        from bertbridge.core.plugins.registry import backends

        able = ", ".join(b.name for b in backends() if b.distributed_engine) or "none installed"
        raise NotSupportedError(
            f"distribution asks for {dist.world_size} processes, but backend {backend.name!r} trains in one process "
            f"only; set distribution.processes_per_host: 1 and distribution.hosts: 1, or use a backend with a "
            f"distributed engine: {able}."
        )
    if spec.debugger.attention:
        raise NotSupportedError("debugger.attention records single-process runs only; set distribution.processes_per_host: 1 "
                                "and distribution.hosts: 1, or debugger.attention: false.")


def create_model(backend, model_dir: Path, setup, spec: TaskSpec, role_: str):
    """``(model, collective)``: the backend's trainable model and, for a worker, the job it
    joined (the engine first, so that TensorFlow's strategy exists before any variable)."""
    collective = backend.join_distributed(spec.distribution.timeout) if role_ == "worker" else None
    model = backend.create_model(model_dir, setup)
    if collective is not None:
        model.distribute(collective)
    return model, collective


def launch(backend, cluster: Cluster, worker_argv: Sequence[str]) -> None:
    """Start this host's share of the job (``backend.process_plan(cluster)``; workers run
    ``python WORKER_ARGV...``) and wait for it; see :func:`bertbridge.core.distributed.launcher.run_processes`."""
    from bertbridge.core.distributed.launcher import run_processes

    plan = backend.process_plan(cluster)
    where = "this machine" if len(cluster.hosts) == 1 else f"host {cluster.host} ({cluster.host_index + 1} of {len(cluster.hosts)})"
    print(
        f"bertbridge: data-parallel training, {cluster.processes_per_host} of {cluster.world_size} {backend.name} workers "
        f"on {where} ({backend.distributed_engine}; ports {', '.join(map(str, cluster.ports))})",
        file=sys.stderr, flush=True,
    )
    run_processes(plan, worker_argv)


def launch_locally(spec: TaskSpec, backend, target: Path) -> Path:
    """Run the spec as ``distribution.processes_per_host`` workers on this machine and wait for
    them; returns ``target``, where rank 0 saved the model. Raises
    :class:`~bertbridge.core.errors.DistributedError` (naming the rank) if any worker fails."""
    dist = spec.distribution
    if dist.hosts > 1:
        raise SpecError(
            f"distribution.hosts is {dist.hosts}: bertbridge starts the processes of one machine only. Run it on SageMaker "
            "('bertbridge sagemaker train' takes the instance count from distribution.hosts), or start each host's "
            f"workers with the engine's own launcher ({backend.distributed_engine})."
        )
    cluster = local_cluster(dist.processes_per_host, dist.timeout)
    with tempfile.TemporaryDirectory(prefix="bertbridge-job-") as run_dir:
        spec_file = Path(run_dir) / "spec.json"
        spec_file.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        launch(backend, cluster, ["-m", "bertbridge", "train", str(spec_file), "--backend", backend.name,
                                  "--output-dir", str(target)])
    return target


def worker_summary(collective: Optional[Collective]) -> dict[str, float]:
    """Metrics recording how the model was trained (logged and saved with the others)."""
    return {"world_size": float(collective.world_size if collective is not None else 1)}
