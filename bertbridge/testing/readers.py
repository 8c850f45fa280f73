"""Who else opens an artifact: another backend in this process, the numpy reference, or a backend
installed in another Python environment (``BERTBRIDGE_<BACKEND>_PYTHON``, as the CLI forwards to it).

A reader in another environment is one child process per interpreter, started on first use and
kept for the rest of the session (run as ``python -m bertbridge.testing.readers``): it answers one
JSON request per line, so the framework there is imported once. Its answers travel as ``.npz``
files; its own output goes to a log file whose tail is shown when a request fails.

Nothing here imports pytest or a framework.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def interpreter_variable(backend_name: str) -> str:
    """The environment variable naming the Python of ``backend_name``'s own environment."""
    return f"BERTBRIDGE_{backend_name.upper().replace('-', '_')}_PYTHON"


def _setup_dict(setup) -> dict:
    d = asdict(setup)
    d["id2label"] = {str(k): v for k, v in d["id2label"].items()}
    return d


def _setup_from(d: Mapping[str, Any]):
    from bertbridge.core.backend import ModelSetup

    return ModelSetup(**{**d, "id2label": {int(k): v for k, v in d["id2label"].items()}})


def run_backend(name: str, folder: str, setup, batch: Mapping[str, np.ndarray], *, steps: Sequence[float] = ()) -> np.ndarray:
    """Logits of ``batch`` from backend ``name`` in this process, with the artifact in ``folder``
    opened by ``load_model``; first ``steps`` optimizer steps on ``batch`` (``accumulate`` + ``step(lr)``
    each: the model ``load_model`` returns must then be trainable)."""
    from bertbridge.core.plugins.registry import backends

    model = backends().get(name).load_model(Path(folder), setup)
    for lr in steps:
        model.accumulate(batch, 1.0)
        model.step(lr)
    return np.asarray(model.logits(batch))


class Reader:
    """Something that opens an artifact and gives logits; ``where`` says how it is reached."""

    name: str
    where: str = "in this process"

    def logits(self, folder: Path, setup, batch: Mapping[str, np.ndarray], *, steps: Sequence[float] = ()) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name} ({self.where})"


class BackendReader(Reader):
    def __init__(self, name: str) -> None:
        self.name = name

    def logits(self, folder, setup, batch, *, steps=()):
        return run_backend(self.name, str(folder), setup, batch, steps=steps)


class ReferenceReader(Reader):
    """The numpy reference (:mod:`bertbridge.testing.reference`); it cannot train."""

    name = "numpy-reference"

    def logits(self, folder, setup, batch, *, steps=()):
        from bertbridge.testing import reference

        if steps:
            raise NotImplementedError("the numpy reference does not train")
        return reference.logits(folder, batch, setup.head)


class ForwardedReader(Reader):
    """Backend ``name`` run by the Python of another environment."""

    def __init__(self, name: str, python: str) -> None:
        self.name, self.python = name, python
        self.where = f"through {python}"

    def logits(self, folder, setup, batch, *, steps=()):
        return _child(self.python).request(self.name, str(folder), setup, batch, steps=steps)


class _Child:
    def __init__(self, python: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bertbridge-reader-"))
        self.log = self.dir / "log.txt"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([python, "-m", "bertbridge.testing.readers"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        self.count = 0
        self.lock = threading.Lock()

    def request(self, name, folder, setup, batch, *, steps=()) -> np.ndarray:
        with self.lock:
            self.count += 1
            inp, out = self.dir / f"in-{self.count}.npz", self.dir / f"out-{self.count}.npz"
            np.savez(inp, **batch)
            message = {"backend": name, "folder": folder, "setup": _setup_dict(setup),
                       "steps": list(steps), "batch": str(inp), "out": str(out)}
            try:
                self.proc.stdin.write(json.dumps(message) + "\n")
                self.proc.stdin.flush()
                answer = json.loads(self.proc.stdout.readline() or "null")
            except (BrokenPipeError, ValueError):
                answer = None
            if not answer or "error" in answer:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"backend {name!r} in {self.proc.args[0]} failed: "
                                     f"{(answer or {}).get('error', 'the reader process died')}\n{tail}")
            with np.load(out) as result:
                return result["logits"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()


_children: dict[str, _Child] = {}
_children_lock = threading.Lock()


def _child(python: str) -> _Child:
    with _children_lock:
        child = _children.get(python)
        if child is None or child.proc.poll() is not None:
            child = _children[python] = _Child(python)
        return child


@atexit.register
def _close_children() -> None:
    for child in list(_children.values()):
        child.close()
    _children.clear()


def serve(stdin=sys.stdin) -> None:
    """The child's loop: one JSON request per line in, one JSON answer per line out."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what libraries print goes to the log, not into the answers
    sys.stdout = sys.stderr
    for line in stdin:
        try:
            a = json.loads(line)
            with np.load(a["batch"]) as f:
                batch = {k: f[k] for k in f.files}
            logits = run_backend(a["backend"], a["folder"], _setup_from(a["setup"]), batch, steps=a["steps"])
            np.savez(a["out"], logits=logits)
            answers.write(json.dumps({"ok": True}) + "\n")
        except Exception as exc:  # reported to the parent, which fails the test with it
            import traceback

            traceback.print_exc()
            answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")


if __name__ == "__main__":
    serve()
