"""Prediction over files of any length: inputs in chunks, output rows as they are made, and
``--resume`` of an output file that a killed run left behind.

A resumable output has one JSON line per input row, in input order, so the number of
complete lines says how many inputs are done; a line cut short by the kill is dropped.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from bertbridge.core.errors import DataError
from bertbridge.core.io import progress

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


def predict_lines(items: Iterable[tuple[int, Any]], predict: Callable[[list], list[dict]], path: Path, args: Any, *,
                  unit: str, empty: str) -> Iterator[dict]:
    """``{"line": n, **prediction}`` for each ``(line number, input)`` of ``items`` (read from ``path``),
    predicted a chunk at a time as the file is read, with a progress bar counting ``unit``. With
    ``args.skip`` (``--resume``), after the rows the output (``args.output``, last row ``args.last_row``)
    already holds. A file with no input at all is a DataError saying ``empty``."""
    skip = getattr(args, "skip", 0)
    if skip:
        items = skip_done(items, skip, getattr(args, "last_row", None), ("line", lambda item: item[0]), Path(args.output))
    total = max(count_lines(path) - skip, 0) if progress.enabled() and path.is_file() else None
    bar = progress.bar(total, "predicting", unit=unit)
    done = skip
    try:
        for chunk in chunked(items):
            for (line, _), row in zip(chunk, predict([value for _, value in chunk])):
                yield {"line": line, **row}
            done += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
    if done == 0:
        raise DataError(f"{path}: {empty}")


def count_lines(path: Path) -> int:
    """Newline-ended lines of ``path`` plus a last unended one, counted in blocks (for a progress bar's total)."""
    lines, last = 0, b"\n"
    with Path(path).open("rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


@dataclass(frozen=True)
class Written:
    """What an earlier run's output holds: ``rows`` complete lines, the ``last`` one parsed, and where
    they end (``end``: a line cut short by a kill starts there)."""

    rows: int
    last: Optional[dict]
    end: int


def rows_done(path: Path) -> Written:
    """What ``path`` holds (nothing when it does not exist), read without changing it; see :func:`drop_cut_line`."""
    path = Path(path)
    if not path.exists():
        return Written(0, None, 0)
    if not path.is_file():
        raise DataError(f"{path}: --resume needs the output file of an earlier run, but this is not a file.")
    lines, start, end, offset = 0, 0, 0, 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            cut = block.rfind(b"\n")
            if cut >= 0:
                before = block.rfind(b"\n", 0, cut)
                start = offset + before + 1 if before >= 0 else end  # where the last complete line starts
                end = offset + cut + 1
            offset += len(block)
        if end < offset:  # a cut line: refuse a file that is not an output of this command
            fh.seek(end)
            if not fh.read(2).startswith(b"{"):
                raise DataError(f"{path}: ends with a line that is not a prediction row of bertbridge predict; --resume "
                                "continues only an output it wrote. Run again without --resume, or with another --output.")
        if not lines:
            return Written(0, None, end)
        fh.seek(start)
        return Written(lines, _row(path, fh.read(end - start)), end)


def drop_cut_line(path: Path, written: Written) -> None:
    """Remove a last line cut short by a kill (after ``written.end``), so the run can append."""
    if Path(path).exists() and Path(path).stat().st_size > written.end:
        os.truncate(path, written.end)


def _row(path: Path, line: bytes) -> dict:
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise DataError(f"{path}: the last line is not a prediction row of bertbridge predict; --resume continues only "
                        "an output that bertbridge predict wrote. Run again without --resume, or with another --output.")
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
