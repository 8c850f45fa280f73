"""Prediction over files of any length: inputs in chunks, output rows as they are made, and
``--resume`` of an output file that a killed run left behind.

A resumable output has one JSON line per input row, in input order, so the number of
complete lines says how many inputs are done; a line cut short by the kill is dropped.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, TypeVar

from bertbridge.core.errors import DataError

T = TypeVar("T")

PREDICT_CHUNK = 1024
"""Inputs predicted together: enough for length-sorted batches, few enough that memory stays flat."""

_BLOCK = 1 << 20


def chunked(items: Iterable[T], size: Optional[int] = None) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (default :data:`PREDICT_CHUNK`; the last may be shorter), read lazily."""
    size = size or PREDICT_CHUNK
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def count_lines(path: Path) -> int:
    """Newline-ended lines of ``path`` plus a last unended one, counted in blocks (for a progress bar's total)."""
    lines, last = 0, b"\n"
    with Path(path).open("rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def rows_done(path: Path) -> int:
    """How many complete lines ``path`` holds (0 when it does not exist). A last line without its
    newline, cut short when a run was killed, is removed from the file so the run can append."""
    path = Path(path)
    if not path.exists():
        return 0
    if not path.is_file():
        raise DataError(f"{path}: --resume needs the output file of an earlier run, but this is not a file.")
    lines, end, offset = 0, 0, 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = offset + cut + 1
            offset += len(block)
    if end < offset:
        os.truncate(path, end)
    return lines
