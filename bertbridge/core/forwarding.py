"""Running a backend whose framework lives in another Python environment.

MXNet 1.9 needs numpy<2 (and SageMaker Debugger protobuf<=3.20.3), which cannot
share an environment with TensorFlow 2.21, so it gets its own (``make mxnet-env``).
Point ``BERTBRIDGE_<BACKEND>_PYTHON`` (e.g. ``BERTBRIDGE_MXNET_PYTHON``) at that
environment's interpreter and the ``bertbridge`` command forwards commands for that
backend to it, unchanged: same arguments, same output, same exit status.
``bertbridge run-local`` uses the same interpreter for the job. A backend that is
importable here always runs here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

FORWARDED = "BERTBRIDGE_FORWARDED"


def env_var(backend_name: str) -> str:
    return f"BERTBRIDGE_{backend_name.upper().replace('-', '_')}_PYTHON"


def interpreter_for(backend_name: str) -> Optional[str]:
    """The interpreter configured for ``backend_name``, or None. A set but missing path is an error."""
    from bertbridge.core.errors import BackendUnavailableError

    value = os.environ.get(env_var(backend_name))
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BackendUnavailableError(
            f"{env_var(backend_name)}={value} is not an executable Python interpreter; create the environment "
            f"(make {backend_name}-env) or fix the variable."
        )
    return str(path)


def installed_here(requires: Sequence[str]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in requires)


def forward(argv: Sequence[str], python: str) -> int:
    """Run ``bertbridge ARGV`` with ``python``; returns its exit status. SIGINT and SIGTERM
    are passed on to it (a forwarded server shuts down gracefully, and never outlives us)."""
    import signal
    import threading

    env = {**os.environ, FORWARDED: "1"}
    from bertbridge.core.distributed.launcher import die_with_parent

    # kill -9 of this process takes the child with it (no orphan training holding the output lock)
    child = subprocess.Popen([python, "-m", "bertbridge.core.cli", *argv], env=env,
                             preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
    relayed = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in relayed:
            previous[sig] = signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    try:
        code = child.wait()
        return 128 - code if code < 0 else code  # died of signal N: exit 128+N, as a shell reports it
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # we are leaving for another reason: take the child with us
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def reachable_status(backend):
    """``backend.status()``, except that a backend not importable here but reached through
    ``BERTBRIDGE_<NAME>_PYTHON`` is reported as that interpreter sees it (``python`` set to it)."""
    import dataclasses

    from bertbridge.core.errors import BertbridgeError

    status = backend.status()
    if status.available or os.environ.get(FORWARDED):
        return status
    try:
        python = interpreter_for(backend.name)
    except BertbridgeError as exc:  # the variable names no interpreter: say so in this backend's row
        return dataclasses.replace(status, detail=str(exc))
    if python is None:
        return status
    there = forwarded_status(backend.name, python)
    detail = (f"forwarded to {python} ({env_var(backend.name)})" if there["available"]
              else f"in {python}: {there['detail']}")
    return dataclasses.replace(status, available=bool(there["available"]), version=there["version"], detail=detail,
                               python=python)


def forwarded_status(name: str, python: str) -> dict:
    """``bertbridge backends --json``'s entry for ``name`` as the interpreter ``python`` sees it;
    on failure, an unavailable entry whose detail says why."""
    env = {**os.environ, FORWARDED: "1"}
    try:
        run = subprocess.run([python, "-m", "bertbridge.core.cli", "backends", "--json"], capture_output=True,
                             text=True, env=env, timeout=120)
        entries = {e["name"]: e for e in json.loads(run.stdout)} if run.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return {"available": False, "version": None, "detail": f"{env_var(name)}={python} failed: {exc}"}
    if name not in entries:
        why = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return {"available": False, "version": None, "detail": f"{env_var(name)}={python} cannot list it: {why}"}
    return entries[name]


def target_backend(args) -> Optional[str]:
    """The backend a parsed command will run on, worked out cheaply (no framework import)."""
    from bertbridge.core.io.artifacts import Manifest
    from bertbridge.core.plugins.registry import backend_name

    command = args.command
    if command in ("train", "tune", "run-local"):  # the task may be one installed only in the other environment
        from bertbridge.core.spec import TaskSpec

        return backend_name(args.backend, TaskSpec.from_file(args.spec, args.overrides).backend)
    if command in ("evaluate", "predict", "serve", "export", "explain") or (command == "attention" and not _renders_trial(args)):
        if args.backend:
            return args.backend
        try:
            return Manifest.read(Path(args.model)).backend
        except Exception:  # let the command itself report a bad model folder
            return None
    if command == "attention":  # rendering a trial needs smdebug: the environment of a backend that records them
        from bertbridge.core.plugins.registry import backends

        recorders = [b.name for b in backends() if b.debugger]
        return None if installed_here(("smdebug",)) or not recorders else recorders[0]
    return None


def _renders_trial(args) -> bool:
    """``attention`` on a folder without a manifest: a debugger trial (a model folder runs like ``predict``)."""
    from bertbridge.core.io.artifacts import MANIFEST_NAME

    return args.command == "attention" and not (Path(args.model) / MANIFEST_NAME).is_file()


def maybe_forward(args, argv: Sequence[str]) -> Optional[int]:
    """Exit status of the forwarded command, or None to run it here."""
    if os.environ.get(FORWARDED) or args.command == "run-local":
        return None
    name = target_backend(args)
    if name is None:
        return None
    from bertbridge.core.plugins.registry import backends

    try:
        backend = backends().get(name)
    except Exception:
        return None  # an unknown name: the command reports it with the list of backends
    needs = ("smdebug",) if _renders_trial(args) else backend.requires
    if installed_here(needs):
        return None
    python = interpreter_for(name)
    if python is None:
        return None  # the command fails with the install instructions
    return forward(argv, python)
