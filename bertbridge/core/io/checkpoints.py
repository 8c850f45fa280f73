"""Training checkpoints for resuming an interrupted run (e.g. SageMaker managed spot training).

A checkpoint is a folder ``checkpoint-<step>/`` with ``state.safetensors`` (the
backend's :meth:`~bertbridge.core.backend.TrainableModel.training_state`: weights,
optimizer slots, framework RNG; plus ``best.*`` weights when best-weights keeping
needs them) and ``trainer.json`` (where the loop was: epoch, batch, numpy RNG,
early-stopping counters, metrics). It is written beside its final name and renamed
into place, and only the newest one is kept, so a kill at any moment leaves a
complete checkpoint to resume from. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from bertbridge.core.errors import ArtifactError

PREFIX = "checkpoint-"
STATE = "state.safetensors"
LOOP = "trainer.json"


def _complete(folder: Path) -> bool:
    return (folder / STATE).is_file() and (folder / LOOP).is_file()


def latest(directory: Path) -> Optional[Path]:
    """The newest complete checkpoint in ``directory`` (None if there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = []
    for path in directory.iterdir():
        if path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit() and _complete(path):
            found.append((int(path.name[len(PREFIX):]), path))
    return max(found)[1] if found else None


def save(directory: Path, step: int, arrays: Mapping[str, np.ndarray], loop: Mapping[str, Any]) -> Path:
    """Write ``checkpoint-<step>`` atomically, then remove older checkpoints."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{PREFIX}{step}"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=directory))
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(staging / STATE))
        (staging / LOOP).write_text(json.dumps(loop, indent=1) + "\n", encoding="utf-8")
        for path in staging.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for path in directory.iterdir():  # only our own older checkpoints; other tools' folders are left alone
        ours = path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit() and (path / LOOP).is_file()
        stale_staging = path.name.startswith(f".{PREFIX}") and ".tmp-" in path.name
        if (ours and path != target) or stale_staging:
            shutil.rmtree(path, ignore_errors=True)
    return target


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(Path(folder) / STATE))
        loop = json.loads((Path(folder) / LOOP).read_text(encoding="utf-8"))
    except Exception as exc:
        raise ArtifactError(
            f"{folder}: unreadable checkpoint ({type(exc).__name__}: {exc}). Delete it to start over, "
            "or restore it from its copy (e.g. the job's checkpoint S3 location)."
        ) from None
    return arrays, loop


def check_fingerprint(folder: Path, loop: Mapping[str, Any], fingerprint: str) -> None:
    if loop.get("fingerprint") != fingerprint:
        raise ArtifactError(
            f"{folder}: this checkpoint belongs to a run with a different spec or data, so it cannot be resumed. "
            "Empty the checkpoint folder (or set another training.checkpoint_dir) to start over."
        )
