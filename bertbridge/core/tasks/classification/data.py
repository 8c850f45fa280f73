"""Classification data: a labelled file (csv/tsv/jsonl, or TFRecord shards) read, label-encoded and tokenized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from bertbridge.core.data.labels import LabelMap
from bertbridge.core.data.readers import Example, infer_format, read_examples, texts_of
from bertbridge.core.errors import DataError
from bertbridge.core.spec import DataConfig
from bertbridge.core.text.tokenize import Encoded, TextEncoder


@dataclass
class Split:
    """A tokenized data file."""

    path: str
    examples: list[Example]
    features: Encoded
    targets: Optional[np.ndarray]


def read_split(
    path: Union[str, Path],
    cfg: DataConfig,
    encoder: TextEncoder,
    label_map: LabelMap,
    *,
    max_length: int,
    multi_label: bool,
    require_labels: bool = True,
    examples: Optional[list[Example]] = None,
) -> Split:
    """Read (unless ``examples`` are given), encode labels and tokenize one data file;
    TFRecord shards (already tokenized) are read as they are."""
    if examples is None and infer_format(path, cfg.format) == "tfrecord":
        return _read_record_split(path, encoder, label_map, max_length, multi_label, require_labels)
    if examples is None:
        examples = read_examples(path, cfg, multi_label=multi_label, require_labels=require_labels)
    targets = label_map.encode(examples, str(path), multi_label) if require_labels else None
    texts, pairs = texts_of(examples)
    return Split(str(path), examples, encoder.encode(texts, pairs, max_length=max_length), targets)


def _read_record_split(path, encoder: TextEncoder, label_map: LabelMap, max_length: int, multi_label: bool, require_labels: bool) -> Split:
    from bertbridge.core.data import tfrecord

    meta = tfrecord.read_metadata(Path(path))
    if meta.get("tokenizer") and meta["tokenizer"] != encoder.fingerprint:
        raise DataError(
            f"{path}: these shards were tokenized with another vocabulary ({meta.get('model', 'unknown model')}) "
            "than this model's. Re-export them with this model: bertbridge export-tfrecord SPEC."
        )
    if meta.get("labels") and tuple(meta["labels"]) != label_map.labels:
        raise DataError(
            f"{path}: the shards' labels ({', '.join(meta['labels'])}) differ from the task's ({', '.join(label_map.labels)}); "
            "label indices would mean different things. Set data.labels to the shards' labels or re-export."
        )
    for key, expected in (("multi_label", multi_label),):
        if key in meta and bool(meta[key]) != expected:
            raise DataError(f"{path}: the shards were exported with {key}={meta[key]}, but the task has {key}={expected}. Re-export them with this spec.")
    records = tfrecord.read_split(Path(path), len(label_map), multi_label=multi_label, max_length=max_length, require_labels=require_labels)
    vocab = encoder.vocab_size
    for i, ids in enumerate(records.features.input_ids):
        if len(ids) and int(ids.max()) >= vocab:
            raise DataError(f"{path}: record {i} has token id {int(ids.max())}, outside this model's vocabulary of {vocab}. Re-export the shards with this model.")
    return Split(str(path), [], records.features, records.targets)
