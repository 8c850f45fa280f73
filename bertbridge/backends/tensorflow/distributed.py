"""TensorFlow data-parallel training: ``tf.distribute.MultiWorkerMirroredStrategy`` (collective
all-reduce over gRPC), joined from ``TF_CONFIG`` (see :mod:`.launch`), which is also what
bertbridge's local launcher sets.

The model's variables stay ordinary ``tf.Variable`` objects: the strategy is used for its
collectives only (one replica per worker process): :meth:`TFCollective.reduce_tensors` sums a
list of tensors over the workers in one packed all-reduce when called inside a
``tf.function``. The strategy must be created before TensorFlow runs any op in the process
(collective ops are configured when the eager context starts), which is why core joins the
job before building the model.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import threading
from typing import Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bertbridge.core.distributed.collective import Collective  # noqa: E402
from bertbridge.core.errors import DistributedError  # noqa: E402

from .launch import TRAINING_JOBS, TFConfig, parse_tf_config  # noqa: E402

JOIN_SLACK_S = 60  # the last-resort join watchdog fires this long after ``timeout``
_SUM = tf.distribute.ReduceOp.SUM


class TFCollective(Collective):
    """This worker's place in a MultiWorkerMirroredStrategy job described by ``TF_CONFIG``."""

    def __init__(self, timeout: int) -> None:
        config = parse_tf_config(os.environ)
        if config is None:
            raise DistributedError("TF_CONFIG does not describe a cluster of chief/worker tasks; a TensorFlow "
                                   "data-parallel worker needs one (bertbridge's launcher sets it).")
        self.config = config
        self.rank, self.world_size, self.local_rank = config.rank, config.world_size, config.local_rank
        self.timeout = int(timeout)
        self._closed = False
        _one_gpu_per_worker(self.local_rank)
        bounded = _configure_coordination(config, self.timeout)
        if not bounded:  # TensorFlow's leader would wait for missing peers without a deadline
            faulthandler.dump_traceback_later(self.timeout + JOIN_SLACK_S, exit=True)
        try:
            options = tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.AUTO,
                timeout_seconds=float(self.timeout),
            )
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except Exception as exc:  # DeadlineExceeded (a peer never came), RuntimeError (TF ran ops already)
            raise DistributedError(f"{self._where()} within {self.timeout} s ({_first_line(exc)}). {self._hint(exc)}") from None
        finally:
            if not bounded:
                faulthandler.cancel_dump_traceback_later()
        if self.strategy.num_replicas_in_sync != self.world_size:
            raise DistributedError(
                f"rank {self.rank}: MultiWorkerMirroredStrategy has {self.strategy.num_replicas_in_sync} replicas for "
                f"{self.world_size} workers; bertbridge runs one replica per worker process."
            )
        if threading.current_thread() is threading.main_thread():
            # TensorFlow's coordination service traps SIGTERM for its preemption handling, which
            # bertbridge does not use: let the launcher stop this worker the ordinary way.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._sum64 = tf.function(lambda x: self.reduce_tensors([x])[0], input_signature=[tf.TensorSpec([None], tf.float64)])

    # -- joining -------------------------------------------------------------
    def _where(self) -> str:
        c = self.config
        return (f"rank {self.rank} ({c.task_type}:{c.task_index} at {c.address}) could not join the "
                f"MultiWorkerMirroredStrategy cluster led by {c.addresses[0]}")

    def _hint(self, exc: BaseException) -> str:
        if isinstance(exc, RuntimeError) and "startup" in str(exc):
            return "TensorFlow ran an op before the strategy was created; join the job before building the model."
        silent = [f"rank {r} at {a}" for r, a in enumerate(self.config.addresses) if r != self.rank and not _listening(a)]
        heard = f"Nothing answers for {', '.join(silent)}. " if silent else "Every peer's port answers; one may have a different TF_CONFIG. "
        return (heard + "Check that every worker started with the same cluster in TF_CONFIG, that the ports are open "
                "between the hosts, and that distribution.timeout allows for slow starts.")

    # -- collectives -----------------------------------------------------------
    def reduce_tensors(self, tensors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """The element-wise sums of ``tensors`` over all workers. Inside a ``tf.function`` (how
        the model calls it) the whole list goes in one packed all-reduce. Every worker must make
        the same calls (same shapes and dtypes) in the same order."""
        def replica_fn(values):
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(_SUM, [tf.identity(v) for v in values])  # identity: places them on this replica

        return list(self.strategy.run(replica_fn, args=(list(tensors),)))

    def broadcast_variables(self, variables: Sequence[tf.Variable]) -> None:
        """Give every worker rank 0's values of ``variables`` (a sum where the others add zeros)."""
        @tf.function
        def broadcast():
            values = [tf.identity(v) if self.rank == 0 else tf.zeros_like(v) for v in variables]
            for var, value in zip(variables, self.reduce_tensors(values)):
                var.assign(value)

        self.run(broadcast)

    def all_reduce_sum(self, values: Sequence[float]) -> np.ndarray:
        return self.run(self._sum64, np.asarray(values, dtype=np.float64)).numpy()

    def run(self, fn, *args):
        """``fn(*args)``, a collective step; a peer that died or timed out becomes a
        :class:`DistributedError` naming this rank."""
        try:
            return fn(*args)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.InternalError, tf.errors.FailedPreconditionError) as exc:
            raise DistributedError(
                f"rank {self.rank} ({self.config.address}): a collective all-reduce failed ({_first_line(exc)}). "
                f"Another worker probably died or stopped answering for {self.timeout} s; its own error is in its log."
            ) from None

    def close(self) -> None:
        """Wait (up to ``timeout``) until every worker is done, so that none leaves while a peer
        still counts on it; errors here are ignored (the work is done)."""
        if self._closed:
            return
        self._closed = True
        try:
            from tensorflow.python.eager import context

            context.context().wait_at_barrier("bertbridge-close", self.timeout * 1000)
        except Exception:  # noqa: BLE001 - best effort: a peer may already be gone
            pass


def _configure_coordination(config: TFConfig, timeout: int) -> bool:
    """Set up the coordination service as MultiWorkerMirroredStrategy would, but with a
    registration barrier of ``timeout`` seconds (by default the leader waits for missing peers
    forever and the others for an hour), so that joining fails in time on every worker. This is
    private TensorFlow API: False when it could not be applied (the strategy then configures
    the service itself)."""
    try:
        from tensorflow.python.distribute import collective_all_reduce_strategy as mwms
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context

        ctx = context.context()
        if ctx.coordination_service is not None:
            return False
        jobs = {job: config.cluster[job] for job in TRAINING_JOBS if config.cluster.get(job)}
        ctx.configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(tf.train.ClusterSpec(jobs)),
            cluster_register_timeout_in_ms=int(timeout) * 1000,
            coordinated_jobs=[mwms.coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(tasks))
                              for job, tasks in jobs.items()],
        )
        ctx.coordination_service.cluster_register_with_barrier = True
        return True
    except Exception:  # noqa: BLE001 - fall back to the strategy's own configuration
        return False


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _one_gpu_per_worker(local_rank: int) -> None:
    """One replica per worker: a worker on a host with GPUs uses the ``local_rank``-th one."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        tf.config.set_visible_devices(gpus[local_rank % len(gpus)], "GPU")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
