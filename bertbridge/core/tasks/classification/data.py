"""Classification data: a labelled file (csv/tsv/jsonl, or TFRecord shards) read, label-encoded and tokenized."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from bertbridge.core.data.labels import LabelMap
from bertbridge.core.data.readers import Example, infer_format, read_examples, texts_of
from bertbridge.core.errors import DataError
from bertbridge.core.spec import DataConfig
from bertbridge.core.tasks.classification import windows
from bertbridge.core.text.tokenize import Encoded, TextEncoder


@dataclass
class Split:
    """A tokenized data file."""

    path: str
    examples: list[Example]
    features: Encoded
    targets: Optional[np.ndarray]
    doc_index: Optional[np.ndarray] = None
    """With ``task.long_text``: the text (row of ``targets``) each feature row (window) comes from."""

    def as_windows(self) -> "Split":
        """The split for training: one example per window, with its text's target."""
        if self.doc_index is None:
            return self
        return Split(self.path, self.examples, self.features, windows.window_targets(self.targets, self.doc_index))


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
    long_text: Optional[Mapping[str, Any]] = None,
) -> Split:
    """Read (unless ``examples`` are given), encode labels and tokenize one data file;
    TFRecord shards (already tokenized) are read as they are. With ``long_text`` settings
    each text becomes its windows (``doc_index`` says whose); without, a long text is cut at
    ``max_length`` tokens and a warning counts them."""
    if examples is None and infer_format(path, cfg.format) == "tfrecord":
        if long_text:
            raise DataError(f"{path}: TFRecord shards hold texts already cut to max_seq_length, so task.long_text cannot "
                            "window them; train long_text models on the csv, tsv or jsonl file.")
        return _read_record_split(path, encoder, label_map, max_length, multi_label, require_labels)
    if examples is None:
        examples = read_examples(path, cfg, multi_label=multi_label, require_labels=require_labels)
    targets = label_map.encode(examples, str(path), multi_label) if require_labels else None
    texts, pairs = texts_of(examples)
    if long_text:
        if pairs is not None:
            raise DataError(f"{path}: this model classifies single texts in windows (task.long_text), but the file is "
                            "read as sentence pairs; leave text_pair_column out.")
        features, doc_index = windows.encode(encoder, texts, long_text, max_length)
        if features.truncated:
            warnings.warn(f"{path}: {features.truncated} of {len(texts)} texts need more than max_windows="
                          f"{long_text['max_windows']} windows of {max_length} tokens; their ends were not read. Raise "
                          "task.long_text.max_windows to read them.", UserWarning, stacklevel=2)
        return Split(str(path), examples, features, targets, doc_index)
    features = encoder.encode(texts, pairs, max_length=max_length)
    if features.truncated:
        fix = ("set task.long_text to classify whole texts in windows." if pairs is None
               else "raise training.max_seq_length to keep more of each pair.")
        warnings.warn(f"{path}: {features.truncated} of {len(features)} inputs are longer than max_seq_length={max_length} "
                      f"tokens and were cut to it; {fix}", UserWarning, stacklevel=2)
    return Split(str(path), examples, features, targets)


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
