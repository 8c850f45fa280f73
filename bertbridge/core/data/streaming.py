"""Prediction over files of any length: inputs in chunks, output rows as they are made, and
``--resume`` of an output file that a killed run left behind.

A resumable output has one JSON line per input row, in input order, so the number of
complete lines says how many inputs are done; a line cut short by the kill is dropped.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

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


def rows_done(path: Path) -> tuple[int, Optional[dict]]:
    """How many complete lines ``path`` holds (0 when it does not exist) and the last one, parsed. A
    last line without its newline, cut short when a run was killed, is removed from the file so the
    run can append."""
    path = Path(path)
    if not path.exists():
        return 0, None
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
    return lines, _last_row(path, end) if lines else None


def _last_row(path: Path, end: int) -> dict:
    with path.open("rb") as fh:
        fh.seek(max(0, end - _BLOCK))
        tail = fh.read(end - fh.tell())
    line = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise DataError(f"{path}: the last line is not a prediction row of bertbridge predict; --resume continues only "
                        "an output that bertbridge predict wrote. Run again without --resume.")
    return row


def skip_done(items: Iterable[T], done: int, last: Optional[dict], key: tuple[str, Callable[[T], Any]],
              output: Path) -> Iterator[T]:
    """``items`` after the first ``done`` (the rows an output already holds), once the last of those
    matches ``last``, the output's last row: ``key`` is ``(field, value_of)`` and ``last[field]`` must
    equal ``value_of(item)``. An output of another input, or with more rows than the input, is refused
    instead of extended."""
    iterator = iter(items)
    field, value_of = key
    count, previous = 0, None
    for previous in itertools.islice(iterator, done):  # only the last is kept: memory stays flat
        count += 1
    if done and (count < done or last is None or last.get(field) != value_of(previous)):
        found = None if last is None else last.get(field)
        raise DataError(f"{output}: holds {done} rows, the last with {field} {found!r}, which is not row {done} of this "
                        "input (it has " + (f"{count} rows" if count < done else f"{field} {value_of(previous)!r} there")
                        + "); --resume continues the output of the same input. Run again without --resume.")
    yield from iterator
