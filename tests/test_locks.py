"""One writer per folder: a second run on a locked output_dir or checkpoint_dir fails at once,
naming the holder; a holder killed with kill -9 leaves no stale lock."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from conftest import tiny_spec

import bertbridge
from bertbridge.core.errors import ArtifactError
from bertbridge.core.io.locks import hold, lock_path

pytest.importorskip("fcntl")

HOLDER = """
import sys, time
from pathlib import Path
from bertbridge.core.io.locks import hold
with hold(Path(sys.argv[1]), "output_dir"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def _held_elsewhere(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``folder``'s lock, killed (-9) when the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / "model"
    with _held_elsewhere(folder) as proc:
        with pytest.raises(ArtifactError, match=rf"model: another bertbridge run \(pid {proc.pid}\) is writing this output_dir"):
            with hold(folder, "output_dir"):
                pass
    with hold(folder, "output_dir"):  # kill -9 released it: no stale lock
        assert lock_path(folder).read_text() == str(__import__("os").getpid())
    assert not lock_path(folder).exists()  # nothing left beside the folder


def test_train_refuses_a_locked_output_dir_before_any_work(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)
    with _held_elsewhere(tmp_path / "m") as proc:
        with pytest.raises(ArtifactError, match=rf"another bertbridge run \(pid {proc.pid}\) is writing this output_dir"):
            bertbridge.train(spec)
        assert not (tmp_path / "m").exists()  # refused before any work
    clf = bertbridge.train(spec)
    assert (clf.path / "bertbridge.json").is_file()
    assert [p.name for p in clf.path.parent.iterdir() if p.name.startswith(".")] == []


def test_train_refuses_a_locked_checkpoint_dir(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)
    spec["training"]["checkpoint_dir"] = str(tmp_path / "ckpt")
    with _held_elsewhere(tmp_path / "ckpt"):
        with pytest.raises(ArtifactError, match=r"ckpt: another bertbridge run .* checkpoint_dir"):
            bertbridge.train(spec)


def test_checkpoints_inside_the_output_folder_itself_are_refused(tiny_model_dir, toy_data, tmp_path):
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)
    spec["training"]["checkpoint_dir"] = str(tmp_path / "m")
    with pytest.raises(bertbridge.BertbridgeError, match=r"checkpoint_dir and output_dir are the same folder"):
        bertbridge.train(spec)
    assert not lock_path(tmp_path / "m").exists()


def test_a_refused_checkpoint_lock_releases_the_output_lock_at_once(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)
    spec["training"]["checkpoint_dir"] = str(tmp_path / "ckpt")
    with _held_elsewhere(tmp_path / "ckpt"):
        with pytest.raises(ArtifactError, match=r"ckpt: another bertbridge run") as failed:
            bertbridge.train(spec)
        assert failed.value is not None  # the traceback is still alive here ...
        with hold(tmp_path / "m", "output_dir"):  # ... and output_dir's lock is free anyway
            pass
