"""Read labelled or unlabelled text examples from csv, tsv and jsonl files.

Every problem is reported as a :class:`~bertbridge.core.errors.DataError` whose
message names the file, the line (1-based, as an editor shows it), the column
or header, and the fix.

* csv: RFC 4180 (quoted fields may hold commas and newlines).
* tsv: one example per line, fields split on tabs, no quoting (GLUE style).
* csv and tsv: a row with more fields than the header (or, without a header, the first
  row) is an error, so a stray tab or comma cannot shift a label; a shorter row is read
  when the columns it lacks are not needed; a field may be any length (long documents).
* jsonl: one JSON object per line; columns are keys; multi-label cells are lists.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from bertbridge.core.errors import DataError
from bertbridge.core.spec import DataConfig

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".tfrecord": "tfrecord", ".tfrecords": "tfrecord"}
TEXT_FORMATS = ("csv", "tsv", "jsonl")


@dataclass(frozen=True)
class Example:
    """One row: text, optional second text, labels (empty tuple when unlabelled), source line."""

    text: str
    text_pair: Optional[str]
    labels: tuple[str, ...]
    line: int


def infer_format(path: Union[str, Path], declared: Optional[str] = None) -> str:
    """A folder is TFRecord shards, a known extension names its format, a FIFO (Pipe mode)
    is TFRecords, and ``declared`` (``data.format``) applies to the rest (``.txt``, ...)."""
    if Path(path).is_dir():
        return "tfrecord"
    if Path(path).is_fifo() and not _SUFFIX_FORMATS.get(Path(path).suffix.lower()):
        return declared or "tfrecord"  # a Pipe-mode channel
    fmt = _SUFFIX_FORMATS.get(Path(path).suffix.lower()) or declared
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension {Path(path).suffix or '(none)'!r}. "
            "Rename it to .csv, .tsv, .jsonl or .tfrecord, or set data.format in the spec "
            "(format: tfrecord for a Pipe-mode channel)."
        )
    return fmt


def read_examples(
    path: Union[str, Path],
    cfg: DataConfig,
    *,
    multi_label: bool = False,
    require_labels: bool = True,
) -> list[Example]:
    """Read every example of ``path`` as described by ``cfg``.

    With ``require_labels=False`` (prediction input) the label column is not
    read at all (it may be absent or empty) and examples carry no labels.
    """
    examples = list(iter_examples(path, cfg, multi_label=multi_label, require_labels=require_labels))
    if not examples:
        raise DataError(f"{path}: no examples found. Check that the file is not empty and that data.header is right.")
    return examples


def iter_examples(
    path: Union[str, Path],
    cfg: DataConfig,
    *,
    multi_label: bool = False,
    require_labels: bool = True,
) -> Iterator[Example]:
    """The examples of ``path`` one at a time, as :func:`read_examples` reads them, from a file read
    line by line: memory stays flat on a file of any length. Errors come when the line that causes them is reached."""
    path = Path(path)
    fmt = infer_format(path, cfg.format)
    if fmt not in TEXT_FORMATS:
        raise DataError(f"{path}: {fmt} files hold tokenized features, not text; give a csv, tsv or jsonl file here.")
    lines = decoded_lines(path, cfg.encoding, split_cr=fmt != "jsonl")
    rows = _jsonl_rows(path, lines) if fmt == "jsonl" else _table_rows(path, lines, fmt, cfg)
    for line, get in rows:
        yield _example(path, line, get, cfg, multi_label, require_labels)


# ---------------------------------------------------------------------------

def _codec(encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return codecs.lookup(codec).name
    except LookupError:
        raise DataError(f"data.encoding {encoding!r} is not a known text encoding (try utf-8 or latin-1).") from None


def decoded_lines(path: Path, encoding: str, *, split_cr: bool) -> Iterator[str]:
    """The file's lines as text, newlines kept, decoded as they are read (any codec). ``split_cr``: a
    lone ``\\r`` ends a line too (csv/tsv, read as ``newline=''`` reads them); jsonl splits on ``\\n``
    only. Bytes that are not valid ``encoding`` are a DataError naming the line and byte offset."""
    codec = _codec(encoding)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the data paths in the spec (they are relative to the spec file).") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; data paths must name a csv, tsv or jsonl file.") from None
    with io.TextIOWrapper(fh, encoding=codec, newline="" if split_cr else "\n") as text:
        try:
            yield from text
        except UnicodeDecodeError:
            raise DataError(_bad_bytes(path, *_first_bad_bytes(path, codec), encoding)) from None


def _first_bad_bytes(path: Path, codec: str) -> tuple[int, int, bytes]:
    """``(line, byte offset, bytes)`` of the first bytes of ``path`` that ``codec`` cannot decode, found
    by decoding it again a block at a time."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset, lines = 0, 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                start = max(0, min(exc.start, len(block)))
                return lines + block[:start].count(b"\n"), offset + start, block[start:start + 4]
            lines += block.count(b"\n")
            offset += len(block)
    return lines, offset, b""


def _bad_bytes(path: Path, line: int, offset: int, sample: bytes, encoding: str) -> str:
    return (f"{path}, line {line}: bytes that are not valid {encoding} (byte offset {offset}: {sample!r}). "
            "Re-save the file as UTF-8, or set data.encoding (for example latin-1) in the spec.")


def _table_rows(path: Path, lines: Iterable[str], fmt: str, cfg: DataConfig) -> Iterator[tuple[int, Any]]:
    if fmt == "tsv":
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(lines)
    columns: Optional[dict[str, int]] = None
    width: Optional[int] = None  # fields per row: the header's, else the first row's
    end = 0
    with _no_field_size_limit():
        try:
            for row in reader:
                line, end = end + 1, reader.line_num  # a quoted csv record can span lines: report where it starts
                if not row or all(not cell.strip() for cell in row):
                    continue
                if width is None:
                    width = len(row)
                elif len(row) > width:  # a stray separator: the fields after it are shifted
                    raise DataError(_width_message(path, line, fmt, len(row), width, cfg.header))
                if cfg.header and columns is None:
                    columns = {name.strip(): i for i, name in enumerate(row)}
                    _check_header(path, columns, cfg)
                    continue
                yield line, _row_getter(path, line, row, columns)
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: malformed {fmt}: {exc}. Check quoting on that line.") from None


def _width_message(path: Path, line: int, fmt: str, got: int, want: int, header: bool) -> str:
    reference = "the header has" if header else "the first row has"
    if fmt == "tsv":
        fix = ("tsv fields cannot hold a tab: replace tabs inside the text with spaces, "
               "or save the file as csv (which quotes fields)")
    else:
        fix = 'quote a field that holds a comma ("a, b"), doubling any quote inside it'
    return f"{path}, line {line}: {got} field(s), but {reference} {want}, so its fields would shift: {fix}."


@contextlib.contextmanager
def _no_field_size_limit():
    """Long documents are real data: lift the csv module's 131,072-character field limit while reading."""
    previous = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a C long: 32 bits on Windows
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _check_header(path: Path, columns: dict[str, int], cfg: DataConfig) -> None:
    for field_name in ("text_column", "text_pair_column"):
        name = getattr(cfg, field_name)
        if name is not None and isinstance(name, str) and name not in columns:
            raise DataError(
                f"{path}, line 1 (header): no column {name!r}; the header has {', '.join(map(repr, columns))}. "
                f"Set data.{field_name} to one of them"
                + (", or set data.header: false if the file has no header row." if field_name == "text_column" else ".")
            )


def _row_getter(path: Path, line: int, row: list[str], columns: Optional[dict[str, int]]):
    def get(column: Union[str, int], field_name: str, required: bool = True) -> Any:
        if isinstance(column, str):
            if columns is None or column not in columns:
                if not required:
                    return None
                raise DataError(
                    f"{path}: the header has no column {column!r} (needed for data.{field_name}); it has "
                    f"{', '.join(map(repr, columns or {}))}. Set data.{field_name} to one of them."
                )
            index = columns[column]
        else:
            index = column
        if index >= len(row):
            if not required:
                return None
            raise DataError(
                f"{path}, line {line}: has {len(row)} field(s) but data.{field_name} is field {index + 1} "
                f"({column!r}). Check the delimiter on that line (csv: commas, tsv: tabs) and quoting."
            )
        return row[index]

    return get


def _jsonl_rows(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    # lines end at \n only: str.splitlines() also splits on U+2028 and friends, legal inside JSON strings
    for line, raw in enumerate(lines, start=1):
        raw = raw.rstrip("\r\n")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {line}: invalid JSON ({exc.msg} at column {exc.colno}). Each line must be one JSON object.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {line}: expected a JSON object like {{\"text\": ..., \"label\": ...}}, got {type(obj).__name__}.")
        yield line, _obj_getter(path, line, obj)


def _obj_getter(path: Path, line: int, obj: dict):
    def get(column: Union[str, int], field_name: str, required: bool = True) -> Any:
        if isinstance(column, int):
            raise DataError(f"{path}: data.{field_name} is the index {column}, but jsonl rows are objects; set it to a key name.")
        if column not in obj:
            if not required:
                return None
            raise DataError(
                f"{path}, line {line}: no key {column!r} (needed for data.{field_name}); the object has "
                f"{', '.join(map(repr, obj)) or 'no keys'}. Set data.{field_name} to the right key or fix the row."
            )
        return obj[column]

    return get


def _text(path: Path, line: int, value: Any, column: Union[str, int], field_name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{path}, line {line}: column {column!r} (data.{field_name}) must be text, got {type(value).__name__}.")
    text = str(value).strip()
    if not text:
        raise DataError(f"{path}, line {line}: column {column!r} (data.{field_name}) is empty. Fill in the text or remove the row.")
    return text


def _labels(path: Path, line: int, value: Any, cfg: DataConfig, multi_label: bool) -> tuple[str, ...]:
    column = cfg.label_column
    if isinstance(value, list):
        if not multi_label:
            raise DataError(
                f"{path}, line {line}: label column {column!r} holds a list, but the task is single-label. "
                "Set task.multi_label: true, or give one label per row."
            )
        items = value
    elif multi_label and isinstance(value, str):
        items = value.split(cfg.label_separator)
    else:
        items = [value]
    labels = []
    for item in items:
        if isinstance(item, (dict, list)) or item is None:
            raise DataError(f"{path}, line {line}: label {item!r} in column {column!r} must be a string or number.")
        if isinstance(item, bool):
            item = int(item)
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        label = str(item).strip()
        if label:
            labels.append(label)
    if not multi_label and not labels:
        raise DataError(f"{path}, line {line}: label column {column!r} is empty. Fill in the label or remove the row.")
    return tuple(dict.fromkeys(labels))


def _example(path: Path, line: int, get, cfg: DataConfig, multi_label: bool, require_labels: bool) -> Example:
    text = _text(path, line, get(cfg.text_column, "text_column"), cfg.text_column, "text_column")
    pair = None
    if cfg.text_pair_column is not None:
        pair = _text(path, line, get(cfg.text_pair_column, "text_pair_column"), cfg.text_pair_column, "text_pair_column")
    labels: tuple[str, ...] = ()
    if require_labels:  # prediction input: whatever is in the label column is ignored
        labels = _labels(path, line, get(cfg.label_column, "label_column"), cfg, multi_label)
    return Example(text, pair, labels, line)


def texts_of(examples: Sequence[Example]) -> tuple[list[str], Optional[list[str]]]:
    """Split examples into the text list and the (optional) text-pair list."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair is not None else None
    return texts, pairs
