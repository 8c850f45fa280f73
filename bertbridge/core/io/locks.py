"""One writer per folder: an exclusive lock held for a whole training run.

Two runs writing the same ``output_dir`` (or ``checkpoint_dir``) would race in the save
step or silently replace each other's model. :func:`hold` takes a lock on a file beside the
folder (``.<name>.lock``: the folder itself is replaced atomically on save, so it cannot hold
the lock) and refuses at once, naming the holder's pid, when another process has it.

The lock is an ``fcntl.flock``: the operating system drops it when its process ends, so a run
killed with ``kill -9`` never leaves a stale lock behind. Where ``fcntl`` does not exist
(Windows) runs are not locked.

Example::

    >>> with hold(Path("outputs/model"), "output_dir"):   # doctest: +SKIP
    ...     train_and_save()
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from bertbridge.core.errors import ArtifactError


def lock_path(folder: Path) -> Path:
    """The lock file of ``folder``: a hidden sibling."""
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def hold(folder: Path, field: str) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block; ``field`` (``output_dir``...) names it in errors."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    path = lock_path(Path(folder))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, field, fcntl)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before unlocking: a waiter that opened this file retries on the new one
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(path: Path, field: str, fcntl) -> int:
    """An open, locked descriptor of ``path`` (the file the path names now, not an unlinked one)."""
    for _ in range(100):  # each retry means another run released the lock meanwhile
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            folder = path.parent / path.name[1 : -len(".lock")]
            raise ArtifactError(
                f"{folder}: another bertbridge run (pid {holder}) is writing this {field}. Wait for it to finish, "
                f"or give this run another {field}."
            ) from None
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)  # the holder released and removed it between our open and lock: try the new file
    raise ArtifactError(f"{path}: could not take this lock file (it kept being replaced); check the file system "
                        f"of the {field}.")


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
