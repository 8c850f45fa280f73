"""``bertbridge run-local``: run a spec as a SageMaker script-mode job on this machine.

Builds the container's tree under a base folder::

    base/input/config/hyperparameters.json, inputdataconfig.json, resourceconfig.json
    base/input/data/spec/spec.json     base/input/data/train/...   (Pipe mode: FIFOs train_0)
    base/model/   base/output/data/   base/checkpoints/

sets the same ``SM_*`` environment, runs the backend's entry point in a subprocess
(optionally with another Python, which is how a backend whose framework lives in
another virtual environment runs), and packs ``base/output/model.tar.gz`` the way the
backend's serving container expects. Running it again with the same base folder
resumes from ``base/checkpoints`` like a restarted spot job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from bertbridge.core.distributed.launcher import die_with_parent
from bertbridge.core.errors import SpecError
from bertbridge.core.io.archives import check_archive, check_folder_links
from bertbridge.core.io.artifacts import copy_files
from bertbridge.core.plugins.registry import backend_name, backends

HOST = "algo-1"


@dataclass
class LocalRun:
    base: Path
    returncode: int
    model_dir: Path
    model_tar: Optional[Path]
    failure: Optional[str]


def _pipe_sources(spec, name: str, path: str, work: Path) -> list[Path]:
    """TFRecord files to stream through a channel's FIFO (text data is exported first)."""
    from bertbridge.core.data.readers import infer_format

    if infer_format(path, spec.data.format) == "tfrecord":
        from bertbridge.core.data.tfrecord import shard_files

        return shard_files(Path(path))
    from bertbridge.core.api import export_tfrecord

    shutil.rmtree(work / f"pipe-{name}", ignore_errors=True)
    return export_tfrecord(spec, work / f"pipe-{name}", split=name)


def _record_labels(sources: list[Path]) -> Optional[list]:
    from bertbridge.core.data.tfrecord import read_metadata

    return read_metadata(sources[0]).get("labels") if sources else None


def _feed_fifo(fifo: Path, sources: list[Path]) -> threading.Thread:
    def feed() -> None:
        try:
            with open(fifo, "wb") as out:
                for src in sources:
                    with open(src, "rb") as fh:
                        shutil.copyfileobj(fh, out)
        except BrokenPipeError:
            pass  # the job stopped reading (it failed or finished early)

    thread = threading.Thread(target=feed, name=f"pipe-{fifo.name}", daemon=True)
    thread.start()
    return thread


def _unblock(fifo: Path) -> None:
    """Open a FIFO for reading and close it, so a writer blocked on open() returns."""
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


def run_local(
    spec_path: Union[str, os.PathLike],
    *,
    backend: Optional[str] = None,
    base_dir: Union[str, os.PathLike, None] = None,
    python: Optional[str] = None,
    input_mode: str = "File",
    overrides: Sequence[str] = (),
    stream_output: bool = True,
) -> LocalRun:
    """Run the spec as a local SageMaker job; see the module docstring."""
    from bertbridge.core.api import load_spec

    if input_mode not in ("File", "Pipe"):
        raise SpecError(f"input mode {input_mode!r}: choose File or Pipe.")
    spec = load_spec(spec_path, overrides)
    name = backend_name(backend, spec.backend)
    chosen = backends().get(name)
    base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="bertbridge-local-"))
    config_dir, data_dir = base / "input" / "config", base / "input" / "data"
    for folder in (config_dir, data_dir, base / "model", base / "output" / "data", base / "checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
    failure = base / "output" / "failure"
    if failure.exists():
        failure.unlink()

    # The spec channel carries the spec without data paths: data comes from channels.
    spec_dict = spec.to_dict()
    for key in ("train", "validation", "test"):
        spec_dict["data"][key] = None
    spec_dict["training"]["checkpoint_dir"] = None
    channels = {"spec": "File"}
    feeders, fifos = [], []
    for split in ("train", "validation", "test"):
        path = getattr(spec.data, split)
        if path is None:
            continue
        mode = input_mode if split == "train" else "File"
        channels[split] = mode
        if mode == "Pipe":
            fifo = data_dir / f"{split}_0"
            if fifo.exists():
                fifo.unlink()
            os.mkfifo(fifo)
            fifos.append(fifo)
            sources = _pipe_sources(spec, split, path, base)
            if spec_dict["data"]["labels"] is None and spec_dict["data"]["labels_file"] is None:
                spec_dict["data"]["labels"] = _record_labels(sources)  # a FIFO carries no schema file
            feeders.append(_feed_fifo(fifo, sources))
        else:
            shutil.rmtree(data_dir / split, ignore_errors=True)  # always the current data, never a stale copy
            copy_files(Path(path), data_dir / split)
    (data_dir / "spec").mkdir(exist_ok=True)
    (data_dir / "spec" / "spec.json").write_text(json.dumps(spec_dict, indent=2), encoding="utf-8")

    hyperparameters = {"backend": json.dumps(name)}
    for item in overrides:
        key, _, value = item.partition("=")
        hyperparameters[key.strip()] = value
    (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters), encoding="utf-8")
    (config_dir / "inputdataconfig.json").write_text(json.dumps({k: {"TrainingInputMode": m} for k, m in channels.items()}), encoding="utf-8")
    (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": HOST, "hosts": [HOST]}), encoding="utf-8")

    env = {
        **os.environ,
        "SM_MODEL_DIR": str(base / "model"),
        "SM_INPUT_DIR": str(base / "input"),
        "SM_INPUT_CONFIG_DIR": str(config_dir),
        "SM_OUTPUT_DIR": str(base / "output"),
        "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps({k: v for k, v in hyperparameters.items()}),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "BERTBRIDGE_CHECKPOINT_DIR": str(base / "checkpoints"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"SM_CHANNEL_{k.upper()}": str(data_dir / k) for k in channels})
    command = [python or sys.executable, str(chosen.entry_point_path())]
    out = None if stream_output else subprocess.DEVNULL
    try:
        # the job dies with this runner, even by kill -9: no training left writing into the base folder
        returncode = subprocess.run(command, env=env, stdout=out, stderr=out,
                                    preexec_fn=die_with_parent if sys.platform.startswith("linux") else None).returncode
    finally:
        for fifo in fifos:
            _unblock(fifo)
        for thread in feeders:
            thread.join(timeout=10)
    model_tar = None
    if returncode == 0:
        model_tar = pack_model(chosen, base / "model", base / "output" / "model.tar.gz")
    reason = failure.read_text(encoding="utf-8")[:1024] if failure.exists() else None
    return LocalRun(base, returncode, base / "model", model_tar, reason)


def pack_model(backend, model_dir: Path, tar_path: Path) -> Path:
    """``model.tar.gz`` in the backend's serving layout, written atomically. A model folder with
    a symbolic link out of it is refused (its target would be packed and uploaded)."""
    check_folder_links(model_dir)
    with tempfile.TemporaryDirectory(dir=tar_path.parent) as tmp:
        layout = Path(tmp) / "layout"
        layout.mkdir()
        backend.package_for_serving(model_dir, layout)
        partial = Path(tmp) / "model.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            for item in sorted(layout.iterdir()):
                tar.add(item, arcname=item.name)
        check_archive(partial)
        os.replace(partial, tar_path)
    return tar_path
