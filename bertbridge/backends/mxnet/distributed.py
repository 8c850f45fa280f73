"""MXNet data-parallel training on the ``dist_sync`` kvstore (DMLC parameter server), joined from
the ``DMLC_*`` environment (see :mod:`.launch`, which also plans the scheduler and servers).

With no optimizer set on the kvstore, a ``dist_sync`` server waits for every worker's push
of a key and then stores their *sum* (MXNet's ``KVStoreDistServer`` copies the merged
pushes over the stored value when it has no updater); a pull after one's own push returns
that sum. So a push and pull of the same arrays on every worker is an all-reduce (sum). The
servers add in float32 whatever the arrays' dtype (a float64 push comes back rounded to
float32), which is what gradients are; :meth:`MXCollective.all_reduce_sum` carries float64
values exactly by gathering (see there).

ps-lite never gives up on a missing peer, so every wait here is bounded by
``distribution.timeout``: joining raises :class:`~bertbridge.core.errors.DistributedError`,
and an exchange that waits longer ends the process (status 1) with that error on stderr, as
its thread is stuck in MXNet and cannot be interrupted.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Optional, Sequence

import numpy as np

from bertbridge.core.distributed.collective import Collective
from bertbridge.core.errors import DistributedError

from ._mx import mxnet_module
from .launch import LOCAL_RANK_VARIABLE, missing_variables, planned_rank, resolve_hosts

mx = mxnet_module()
nd = mx.nd

_PIECES = 3  # float32 pieces that carry one float64 exactly (3 x 24 >= 53 significant bits)


class MXCollective(Collective):
    """This worker's ``dist_sync`` kvstore. ``rank`` is the planned ``BERTBRIDGE_RANK`` when set,
    else the kvstore's own (ps-lite numbers workers in the order they reach the scheduler)."""

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        planned = planned_rank(os.environ)
        self._who = f"rank {planned}" if planned is not None else "this dist_sync worker"
        missing = missing_variables(os.environ)
        if missing:
            raise DistributedError(
                f"{self._who}: cannot join the dist_sync kvstore: {', '.join(missing)} not set (MXNet's parameter-server "
                "launcher, or bertbridge's, sets the DMLC_* variables of every process of the job)."
            )
        resolve_hosts(os.environ)
        self._deadline: Optional[float] = None
        self._waiting_for = ""
        self.kv = _create_kvstore(timeout, self._who)
        _barrier_before_exit(self.kv, False)  # a failing worker must exit, not wait for peers stuck waiting for it
        atexit.register(self._leave)
        self.world_size = self.kv.num_workers
        self.rank = planned if planned is not None else self.kv.rank
        self.local_rank = int(os.environ.get(LOCAL_RANK_VARIABLE) or 0)
        self._who = f"rank {self.rank}"
        if not 0 <= self.rank < self.world_size:
            raise DistributedError(f"{self._who}: BERTBRIDGE_RANK must be below DMLC_NUM_WORKER={self.world_size}.")
        self._groups: dict[str, list[str]] = {}
        threading.Thread(target=self._watch, name="bertbridge-kvstore-watchdog", daemon=True).start()

    # -- the contract -------------------------------------------------------
    def all_reduce_sum(self, values: Sequence[float]) -> np.ndarray:
        """Exactly the float64 sum, the same on every worker: each worker puts its values, split
        into float32 pieces that add back to them exactly, in its own row of a zero matrix; the
        servers' sum of those matrices is every worker's pieces (x + 0 is exact), which each
        worker adds up in float64, in rank order."""
        x = np.asarray(values, dtype=np.float64).ravel()
        rows = np.zeros((self.world_size, _PIECES, x.size), dtype=np.float32)
        rows[self.rank] = _split(x)
        array = nd.array(rows, dtype="float32")
        what = "a sum of logged values"
        keys = self._keys(f"bertbridge.sum{x.size}", [array], what)
        self._exchange(keys, [array], [array], what)
        gathered = array.asnumpy().astype(np.float64)
        total = np.zeros(x.size, dtype=np.float64)
        for worker in gathered:
            total += (worker[0] + worker[1]) + worker[2]
        return total

    def close(self) -> None:
        """Leave the job: wait for every worker to finish, then (on the kvstore's rank 0) stop the
        servers, whose processes then exit with the scheduler's."""
        kv, self.kv = self.kv, None
        self._deadline = None
        if kv is None:
            return
        atexit.unregister(self._leave)
        _barrier_before_exit(kv, True)
        del kv  # the kvstore's destructor: barrier, stop the servers, leave ps-lite

    def _leave(self) -> None:
        """At exit without :meth:`close` (the worker failed): leave ps-lite without waiting for the
        others (who may be waiting for this worker), before the interpreter's teardown; a kvstore
        never destroyed makes the process abort on its way out."""
        kv, self.kv = self.kv, None
        self._deadline = None
        del kv

    # -- what the model uses ------------------------------------------------
    def sum_arrays(self, group: str, arrays: Sequence) -> None:
        """Replace ``arrays`` (NDArrays, the same shapes on every worker at every call for one
        ``group``) by their element-wise sums over all workers."""
        what = f"the sum of {group}"
        self._exchange(self._keys(group, arrays, what), arrays, arrays, what)

    def broadcast_arrays(self, group: str, arrays: Sequence) -> None:
        """Overwrite ``arrays`` with rank 0's (a sum to which the other workers add zeros);
        ``group`` may be the one :meth:`sum_arrays` uses for the same shapes."""
        what = f"rank 0's {group}"
        keys = self._keys(group, arrays, what)
        send = list(arrays) if self.rank == 0 else [nd.zeros(a.shape, ctx=a.context, dtype=a.dtype) for a in arrays]
        self._exchange(keys, send, arrays, what)

    # -- internals ----------------------------------------------------------
    def _keys(self, group: str, arrays: Sequence, what: str) -> list[str]:
        if self.kv is None:
            raise DistributedError(f"{self._who}: the kvstore was already closed.")
        keys = self._groups.get(group)
        if keys is None:  # every worker gets here at the same call: init is collective (rank 0 pushes, all wait)
            keys = [f"{group}.{i}" for i in range(len(arrays))]
            with self._bounded(what):
                self.kv.init(keys, [nd.zeros(a.shape, dtype=a.dtype) for a in arrays])
            self._groups[group] = keys
        elif len(keys) != len(arrays):
            raise ValueError(f"{group}: {len(arrays)} arrays, the kvstore has {len(keys)} keys for it.")
        return keys

    def _exchange(self, keys: list, send: Sequence, recv: Sequence, what: str) -> None:
        with self._bounded(what):
            self.kv.push(keys, list(send))
            self.kv.pull(keys, out=list(recv))
            for array in recv:
                array.wait_to_read()

    @contextmanager
    def _bounded(self, what: str):
        self._waiting_for = what
        self._deadline = time.monotonic() + self.timeout
        try:
            yield
        finally:
            self._deadline = None

    def _watch(self) -> None:
        while self.kv is not None:
            time.sleep(1.0)
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                _die(DistributedError(
                    f"{self._who} waited more than distribution.timeout={self.timeout} s for {self._waiting_for} on the "
                    "dist_sync kvstore; a peer (worker, server or scheduler) is gone or stuck."
                ))


def _split(x: np.ndarray) -> np.ndarray:
    """float64 ``x`` as float32 pieces ``a, b, c`` with ``(a + b) + c == x`` exactly in float64 (for
    finite values within float32's range; others travel as ``a`` alone)."""
    with np.errstate(all="ignore"):
        a = x.astype(np.float32)
        rest = np.where(np.isfinite(a), x - a.astype(np.float64), 0.0)
        b = rest.astype(np.float32)
        c = (rest - b.astype(np.float64)).astype(np.float32)
    return np.stack([a, b, c])


def _create_kvstore(timeout: int, who: str):
    """``mx.kv.create("dist_sync")``, which blocks until every node of the job has reached the
    scheduler, bounded by ``timeout`` (it runs in a thread; on a timeout the thread stays stuck
    in ps-lite, and the process must leave with ``os._exit`` so that no C++ teardown waits on it)."""
    box: dict = {}

    def create() -> None:
        try:
            box["kv"] = mx.kv.create("dist_sync")
        except BaseException as exc:  # MXNetError from a ps-lite check
            box["error"] = exc

    where = f"{os.environ.get('DMLC_PS_ROOT_URI')}:{os.environ.get('DMLC_PS_ROOT_PORT')}"
    thread = threading.Thread(target=create, name="bertbridge-kvstore-join", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        atexit.register(_exit_now, 1)
        raise DistributedError(
            f"{who}: could not join the dist_sync kvstore (scheduler at {where}, {os.environ.get('DMLC_NUM_WORKER')} "
            f"workers, {os.environ.get('DMLC_NUM_SERVER')} servers) within {timeout} s. Check that every process of the "
            "job started and the scheduler's port is open."
        )
    if "error" in box:
        exc = box["error"]
        raise DistributedError(
            f"{who}: could not join the dist_sync kvstore (scheduler at {where}): "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
        ) from None
    return box["kv"]


def _barrier_before_exit(kv, on: bool) -> None:
    """Whether the kvstore's destructor waits for the other workers (and stops the servers)."""
    from mxnet.base import _LIB, check_call

    check_call(_LIB.MXKVStoreSetBarrierBeforeExit(kv.handle, ctypes.c_int(int(on))))


def _die(error: DistributedError) -> None:
    print(f"bertbridge: error: {error}", file=sys.stderr, flush=True)
    _exit_now(1)


def _exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
    os._exit(code)
