"""TFRecord shards of tokenized features, written and read without TensorFlow.

Layout of an export folder (``bertbridge export-tfrecord``)::

    out/
      train-00000-of-00004.tfrecord ...       # TFRecord files of tf.train.Example protos
      bertbridge-tfrecord.json                 # schema, labels, tokenizer fingerprint, record counts

Each ``tf.train.Example`` has these ``int64_list`` features:

=================  =====================================================
``input_ids``      token ids with [CLS]/[SEP]; length L
``attention_mask`` 1 for real tokens, 0 for padding; length L
``token_type_ids`` 0 for the first text, 1 for the pair; length L
``label``          single-label: one class index; multi-label: the indices
                   of the positive labels (possibly none); absent if unlabelled
=================  =====================================================

L is each example's own length (variable, the default) or ``max_seq_length``
for every example (``--fixed-length``, padded with the pad id). With
TensorFlow: ``tf.io.parse_single_example(r, {"input_ids": tf.io.VarLenFeature(tf.int64), ...})``
(or ``FixedLenFeature([L], tf.int64)`` for fixed-length exports).

Files are read sequentially, so a SageMaker Pipe-mode channel (a FIFO named
``<channel>_<epoch>``) reads like a file. Damaged records raise a
:class:`~bertbridge.core.errors.DataError` naming the shard, the record and the
byte offset.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from bertbridge.core.errors import DataError
from bertbridge.core.text.tokenize import Encoded

METADATA_NAME = "bertbridge-tfrecord.json"
SUFFIXES = (".tfrecord", ".tfrecords")
FEATURES = ("input_ids", "attention_mask", "token_type_ids")

# -- CRC32C (Castagnoli), masked as TFRecord requires ---------------------------

def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def _crc32c_py(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # C implementation when installed (a dependency of bertbridge); same results
    import google_crc32c as _gcrc

    def crc32c(data: bytes) -> int:
        return _gcrc.value(bytes(data))
except ImportError:  # pragma: no cover - exercised where google-crc32c is missing
    crc32c = _crc32c_py


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- tf.train.Example (int64 features only) as protobuf bytes -----------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def encode_example(features: dict[str, Sequence[int]]) -> bytes:
    """Serialize ``{name: [int, ...]}`` as a ``tf.train.Example`` with int64_list features."""
    entries = b""
    for name, values in features.items():
        packed = b"".join(_varint(int(v)) for v in values)
        feature = _field(3, _field(1, packed) if values else b"")  # Feature.int64_list -> Int64List.value
        entries += _field(1, _field(1, name.encode("utf-8")) + _field(2, feature))  # Features.feature map entry
    return _field(1, entries)  # Example.features


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Union[int, bytes]]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            yield number, wire, buf[pos : pos + size]
            pos += size
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_example(data: bytes) -> dict[str, list[int]]:
    """The int64_list features of a serialized ``tf.train.Example`` (others are skipped)."""
    out: dict[str, list[int]] = {}
    for number, _, features in _fields(data):
        if number != 1 or not isinstance(features, bytes):
            continue
        for fnum, _, entry in _fields(features):
            if fnum != 1 or not isinstance(entry, bytes):
                continue
            name, values, other = "", None, None
            for enum, _, part in _fields(entry):
                if enum == 1 and isinstance(part, bytes):
                    name = part.decode("utf-8")
                elif enum == 2 and isinstance(part, bytes):
                    for knum, _, kind in _fields(part):
                        if knum in (1, 2):
                            other = {1: "bytes_list", 2: "float_list"}[knum]
                        if knum == 3 and isinstance(kind, bytes):  # int64_list
                            values = []
                            for vnum, wire, v in _fields(kind):
                                if vnum != 1:
                                    continue
                                if wire == 2:  # packed
                                    pos = 0
                                    while pos < len(v):  # type: ignore[arg-type]
                                        x, pos = _read_varint(v, pos)  # type: ignore[arg-type]
                                        values.append(_signed(x))
                                else:
                                    values.append(_signed(v))  # type: ignore[arg-type]
            if other is not None and values is None:
                raise ValueError(f"feature {name!r} is a {other}; bertbridge records hold int64_list features only")
            if values is not None:
                out[name] = values
    return out


# -- the record container ----------------------------------------------------------

def write_records(path: Path, payloads: Iterable[bytes]) -> int:
    """Write a TFRecord file atomically (temporary name, then rename); returns the record count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with open(tmp, "wb") as fh:
            for payload in payloads:
                header = struct.pack("<Q", len(payload))
                fh.write(header + struct.pack("<I", masked_crc(header)) + payload + struct.pack("<I", masked_crc(payload)))
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return count


def _read_exactly(fh: IO[bytes], size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = fh.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def iter_records(path: Path) -> Iterator[bytes]:
    """Payloads of a TFRecord file or FIFO, read sequentially, CRCs checked."""
    path = Path(path)
    try:
        fh = open(path, "rb", buffering=1 << 16)
    except FileNotFoundError:
        raise DataError(f"{path}: TFRecord file not found.") from None
    with fh:
        index = offset = 0
        while True:
            header = _read_exactly(fh, 12)
            if not header:
                return
            where = f"{path}, record {index} (byte offset {offset})"
            if len(header) < 12:
                raise DataError(f"{where}: truncated record header; the shard is incomplete. Re-export or re-upload it.")
            (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
            if masked_crc(header[:8]) != crc:
                raise DataError(
                    f"{where}: corrupt length (CRC mismatch); this is not an uncompressed TFRecord file, or it is damaged. "
                    "Re-export it (GZIP/ZLIB-compressed shards must be decompressed first)."
                )
            body = _read_exactly(fh, length + 4)
            if len(body) < length + 4:
                raise DataError(f"{where}: truncated record ({len(body)} of {length + 4} bytes); the shard is incomplete. Re-export or re-upload it.")
            payload = body[:length]
            if masked_crc(payload) != struct.unpack("<I", body[length:])[0]:
                raise DataError(f"{where}: corrupt data (CRC mismatch); the shard is damaged. Re-export it.")
            yield payload
            index += 1
            offset += 12 + length + 4


# -- splits ---------------------------------------------------------------------------

@dataclass
class RecordSplit:
    """Tokenized features (and targets) read back from TFRecords."""

    features: Encoded
    targets: Optional[np.ndarray]
    metadata: dict


def shard_files(path: Path) -> list[Path]:
    """The shards of ``path``: a folder's ``*.tfrecord`` files (sorted), or the file/FIFO itself."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        if not files:
            raise DataError(f"{path}: a folder given as data must hold .tfrecord shards (from bertbridge export-tfrecord); found none.")
        return files
    return [path]


def read_metadata(path: Path) -> dict:
    """The export's ``bertbridge-tfrecord.json`` beside the shards, or {} (e.g. a Pipe-mode FIFO)."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    meta = folder / METADATA_NAME
    if not meta.is_file():
        return {}
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta}: unreadable ({exc}); re-export the shards.") from None


def read_split(path: Path, num_labels: int, *, multi_label: bool, max_length: int, require_labels: bool = True) -> RecordSplit:
    """Read every record of a shard folder, file or FIFO into unpadded features."""
    ids, types, labels = [], [], []
    for shard in shard_files(path):
        for index, payload in enumerate(iter_records(shard)):
            where = f"{shard}, record {index}"
            try:
                record = decode_example(payload)
            except ValueError as exc:
                raise DataError(f"{where}: not a tf.train.Example ({exc}); the shard is damaged or of another kind.") from None
            missing = [k for k in FEATURES if k not in record]
            if missing:
                raise DataError(f"{where}: lacks feature(s) {', '.join(missing)}; export shards with bertbridge export-tfrecord.")
            mask = record["attention_mask"]
            n = int(sum(mask))
            if len(record["input_ids"]) != len(mask) or len(record["token_type_ids"]) != len(mask):
                raise DataError(f"{where}: input_ids, attention_mask and token_type_ids differ in length.")
            if n > max_length:
                raise DataError(f"{where}: {n} tokens, more than training.max_seq_length={max_length}. Raise it or re-export.")
            ids.append(np.asarray(record["input_ids"][:n], dtype=np.int32))
            types.append(np.asarray(record["token_type_ids"][:n], dtype=np.int32))
            if require_labels:
                if "label" not in record:
                    raise DataError(f"{where}: has no 'label' feature, but labels are needed here.")
                bad = [v for v in record["label"] if not 0 <= v < num_labels]
                if bad or (not multi_label and len(record["label"]) != 1):
                    raise DataError(f"{where}: label {record['label']} does not fit the task's {num_labels} labels{' (one per record)' if not multi_label else ''}.")
                labels.append(record["label"])
    if not ids:
        raise DataError(f"{path}: no records. Check the shards (or the Pipe-mode channel) are not empty.")
    targets = None
    if require_labels:
        if multi_label:
            targets = np.zeros((len(labels), num_labels), dtype=np.float32)
            for row, idx in enumerate(labels):
                targets[row, idx] = 1.0
        else:
            targets = np.array([x[0] for x in labels], dtype=np.int64)
    return RecordSplit(Encoded(ids, types), targets, read_metadata(path))


def example_records(features: Encoded, targets: Optional[np.ndarray], *, multi_label: bool,
                    fixed_length: Optional[int], pad_id: int) -> Iterator[bytes]:
    """Serialized examples for tokenized features (padded to ``fixed_length`` if given)."""
    for i in range(len(features)):
        ids = features.input_ids[i].tolist()
        types = features.token_type_ids[i].tolist()
        mask = [1] * len(ids)
        if fixed_length is not None:
            pad = fixed_length - len(ids)
            ids, types, mask = ids + [pad_id] * pad, types + [0] * pad, mask + [0] * pad
        record: dict[str, Sequence[int]] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if targets is not None:
            record["label"] = np.flatnonzero(targets[i]).tolist() if multi_label else [int(targets[i])]
        yield encode_example(record)


def write_split(out_dir: Path, name: str, features: Encoded, targets: Optional[np.ndarray], *, shards: int,
                multi_label: bool, fixed_length: Optional[int], pad_id: int, metadata: dict) -> list[Path]:
    """Write ``shards`` files named ``<name>-0000i-of-0000n.tfrecord`` and the metadata file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = max(1, min(shards, len(features)))
    bounds = np.linspace(0, len(features), shards + 1).astype(int)
    written, counts = [], []
    records = list(example_records(features, targets, multi_label=multi_label, fixed_length=fixed_length, pad_id=pad_id))
    for k in range(shards):
        path = out_dir / f"{name}-{k:05d}-of-{shards:05d}.tfrecord"
        counts.append(write_records(path, records[bounds[k] : bounds[k + 1]]))
        written.append(path)
    meta = {
        **metadata,
        "format_version": 1,
        "split": name,
        "fixed_length": fixed_length,
        "features": {k: f"int64[{fixed_length or 'L'}]" for k in FEATURES} | {"label": "int64[1] or int64[k] (multi-label)"},
        "shards": [{"file": p.name, "records": c} for p, c in zip(written, counts)],
    }
    from bertbridge.core.io.artifacts import write_text_atomic

    write_text_atomic(out_dir / METADATA_NAME, json.dumps(meta, indent=2) + "\n")
    return written
