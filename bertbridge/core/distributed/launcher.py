"""Starting one host's processes of a data-parallel job, and always stopping them.

:func:`run_processes` starts every process of a backend's
:meth:`~bertbridge.core.backend.Backend.process_plan` (each in a session of its own, and
killed by the kernel if this process dies), then watches them. The job succeeds when
every worker exits 0. The first process to exit otherwise fails the job: the others are
stopped (SIGTERM, then SIGKILL after a grace period) and a
:class:`~bertbridge.core.errors.DistributedError` names it, e.g. ``rank 1 (pid 4242) was
killed by SIGKILL``. Ctrl-C and SIGTERM stop everything the same way. The engine's ports
are released with the processes that held them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from bertbridge.core.distributed.collective import JOB_VARIABLE, WORKER, Proc
from bertbridge.core.errors import DistributedError

POLL_S = 0.2
GRACE_S = 10.0


def describe_exit(code: int) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL`` (Popen's negative codes are signals)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` for a child that must not outlive its parent: on Linux the kernel SIGKILLs
    the child when the parent dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect: reparented, so go now
        os._exit(1)


class _Terminated(BaseException):
    """SIGTERM reached the launcher."""


def run_processes(
    plan: Sequence[Proc],
    worker_argv: Sequence[str],
    *,
    python: str = sys.executable,
    announce: Optional[Callable[[str], None]] = None,
    grace: float = GRACE_S,
) -> None:
    """Run ``plan``: workers as ``python WORKER_ARGV...``, helpers as ``python -m MODULE``,
    each with its ``env`` on top of this environment. Returns when every worker exited 0;
    raises :class:`DistributedError` naming the first process that failed. Every process is
    gone when this returns or raises (Ctrl-C included)."""
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    children: list[tuple[Proc, subprocess.Popen]] = []
    previous = None
    if _main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        for proc in plan:
            argv = [python, "-m", proc.module] if proc.module else [python, *worker_argv]
            child = subprocess.Popen(
                argv, env={**os.environ, **proc.env, JOB_VARIABLE: str(os.getpid())}, start_new_session=True,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
            children.append((proc, child))
            say(f"bertbridge: started {proc.name} (pid {child.pid})")
        _watch(children)
    except _Terminated:
        say("bertbridge: terminated; stopping the job's processes")
        _stop(children, grace)
        raise KeyboardInterrupt from None
    except BaseException:
        _stop(children, grace)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _stop(children, grace)  # helpers (parameter servers) left after the workers finished


def _watch(children: Sequence[tuple[Proc, subprocess.Popen]]) -> None:
    """Wait for the workers; the first process to exit non-zero (in the order they exited: a
    peer that errors out because another died exits second) fails the job."""
    import queue
    import threading

    exits: queue.Queue = queue.Queue()
    for proc, child in children:
        threading.Thread(target=lambda p=proc, c=child: (c.wait(), exits.put((p, c))), daemon=True).start()
    workers_left = sum(proc.role == WORKER for proc, _ in children)
    while workers_left:
        try:
            proc, child = exits.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if child.returncode != 0:
            others = sum(c.poll() is None for _, c in children)
            raise DistributedError(
                f"{proc.name} (pid {child.pid}) {describe_exit(child.returncode)}; the job failed and its {others} other "
                f"running process(es) were stopped. The failing process's own error is printed above."
            )
        workers_left -= proc.role == WORKER


def _stop(children: Sequence[tuple[Proc, subprocess.Popen]], grace: float) -> None:
    """SIGTERM every live process group, SIGKILL what is left after ``grace`` seconds, reap all."""
    live = [c for _, c in children if c.poll() is None]
    for child in live:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in live:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for _, child in children:
        _signal_group(child, signal.SIGKILL)  # also any grandchild left in the worker's session
        child.wait()


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
