"""``text_classification``: what differs from other tasks (see :class:`bertbridge.core.task.Task`).

Data: csv/tsv/jsonl with a text (and optional text-pair) column and a label column, or
TFRecord shards made by :meth:`ClassificationTask.export_tfrecord`. Head: ``sequence``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from bertbridge.core.backend import ModelSetup
from bertbridge.core.data import tfrecord
from bertbridge.core.data.labels import LabelMap
from bertbridge.core.data.readers import infer_format, iter_examples, read_examples
from bertbridge.core.data.streaming import predict_lines
from bertbridge.core.errors import DataError, SpecError
from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.spec import TaskSpec
from bertbridge.core.task import Task, TaskData
from bertbridge.core.tasks.classification import windows
from bertbridge.core.tasks.classification.data import read_split
from bertbridge.core.tasks.classification.predictor import DATA_KEYS, TextClassifier
from bertbridge.core.text.tokenize import TextEncoder

SINGLE_LABEL_MONITORS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc", "loss")
MULTI_LABEL_MONITORS = ("subset_accuracy", "micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss", "loss")
SPLITS = ("train", "validation", "test")


class ClassificationTask(Task):
    name = "text_classification"
    summary = "labels for a text or a text pair (single- or multi-label); csv, tsv, jsonl or TFRecord data"
    pipeline_tag = "text-classification"
    minimized = ("loss", "hamming_loss")
    debugger = True
    exportable = True
    train_hint = "the training file (csv, tsv or jsonl)"

    def monitors(self, spec: TaskSpec) -> tuple[str, ...]:
        return MULTI_LABEL_MONITORS if spec.task.multi_label else SINGLE_LABEL_MONITORS

    def default_monitor(self, spec: TaskSpec) -> str:
        return "micro_f1" if spec.task.multi_label else "accuracy"

    def probe_inputs(self, manifest: Manifest) -> list[tuple[str, Optional[str]]]:
        if manifest.text_pair:
            return [("A man is playing a guitar.", "Someone is making music."), ("The cat sleeps.", "A dog runs outside.")]
        return super().probe_inputs(manifest)

    def card_example(self, manifest: Manifest) -> Any:
        if manifest.text_pair:
            return [("A man is playing a guitar.", "Someone is making music.")]
        return super().card_example(manifest)

    def quality_metric(self, manifest: Manifest) -> tuple[str, float]:
        return ("micro_f1" if manifest.multi_label else "accuracy"), 100.0

    def check_spec(self, spec: TaskSpec) -> None:
        """Every field of ``task`` applies (multi_label, threshold, long_text); long texts are single texts."""
        if spec.task.long_text is None:
            return
        if spec.data.text_pair_column is not None:
            raise SpecError("task.long_text windows single texts; this spec reads sentence pairs (data.text_pair_column). "
                            "Remove one of them.")
        if spec.debugger.attention:
            raise SpecError("debugger.attention records single-window examples; turn it off for a task.long_text run.")

    # -- training data ---------------------------------------------------------------
    def read_data(self, spec: TaskSpec, encoder: TextEncoder, backend: str) -> TaskData:
        """Every split read before the model is built, so a bad row fails in seconds."""
        multi = spec.task.multi_label
        train_examples = None
        if infer_format(spec.data.train, spec.data.format) == "tfrecord":
            label_map = _record_labels(spec)
        else:
            train_examples = read_examples(spec.data.train, spec.data, multi_label=multi)
            label_map = LabelMap.from_config(spec.data, train_examples)

        long_text = windows.settings(spec.task.long_text)

        def split(path: Optional[str], examples=None):
            if path is None:
                return None
            return read_split(path, spec.data, encoder, label_map, max_length=spec.training.max_seq_length,
                              multi_label=multi, examples=examples, long_text=long_text)

        manifest = Manifest(
            task=self.name, labels=label_map.labels, backend=backend, max_seq_length=spec.training.max_seq_length,
            lowercase=encoder.lowercase, multi_label=multi, threshold=spec.task.threshold,
            text_pair=spec.data.text_pair_column is not None, base_model=spec.model.name,
            data={k: getattr(spec.data, k) for k in DATA_KEYS}, long_text=long_text,
        )
        setup = ModelSetup(num_labels=len(label_map), multi_label=multi, id2label=label_map.id2label, seed=spec.training.seed)
        train = split(spec.data.train, train_examples)
        counts = {"train_windows": float(len(train.features)), "train_texts": float(len(train.targets))} if long_text else {}
        return TaskData(manifest, setup, train.as_windows(), split(spec.data.validation), split(spec.data.test), counts)

    # -- saved models ------------------------------------------------------------------
    def model_setup(self, manifest: Manifest) -> ModelSetup:
        return ModelSetup(num_labels=len(manifest.labels), multi_label=manifest.multi_label,
                          id2label=dict(enumerate(manifest.labels)), seed=0)

    def predictor(self, model, encoder: TextEncoder, manifest: Manifest, *, batch_size: int) -> TextClassifier:
        return TextClassifier(model, encoder, manifest, batch_size=batch_size)

    # -- TFRecord shards (Pipe mode) ------------------------------------------------------
    def export_tfrecord(self, spec: TaskSpec, split: str, out_dir: Path, *, shards: int, fixed_length: bool) -> list[Path]:
        """Tokenize one split with the spec's model into TFRecord shards plus ``bertbridge-tfrecord.json``
        (see :mod:`bertbridge.core.data.tfrecord` for the schema)."""
        from bertbridge.core.plugins.registry import models

        if split not in SPLITS:
            raise SpecError(f"split {split!r}: choose train, validation or test.")
        path = getattr(spec.data, split)
        if path is None:
            raise SpecError(f"data.{split} is not set in the spec, so there is nothing to export.")
        if shards < 1:
            raise SpecError(f"shards must be >= 1, got {shards}.")
        if spec.task.long_text is not None:
            raise SpecError("task.long_text models train on their csv, tsv or jsonl files (windows are cut when read); "
                            "TFRecord shards hold one truncated sequence per text.")
        others = sorted({p.name.split("-")[0] for p in out_dir.glob("*.tfrecord")} - {split}) if out_dir.is_dir() else []
        if others:
            raise SpecError(f"{out_dir}: already holds shards of {', '.join(others)}; use one folder per split.")
        encoder = TextEncoder.from_pretrained(models().resolve(spec.model.name))
        multi = spec.task.multi_label
        train_examples = read_examples(spec.data.train, spec.data, multi_label=multi) if spec.data.train else None
        label_map = LabelMap.from_config(spec.data, train_examples)
        data = read_split(path, spec.data, encoder, label_map, max_length=spec.training.max_seq_length, multi_label=multi)
        for stale in out_dir.glob(f"{split}-*-of-*.tfrecord") if out_dir.is_dir() else []:
            stale.unlink()
        return tfrecord.write_split(
            out_dir, split, data.features, data.targets, shards=shards, multi_label=multi,
            fixed_length=spec.training.max_seq_length if fixed_length else None, pad_id=encoder.pad_id,
            metadata={
                "task": self.name, "labels": list(label_map.labels), "multi_label": multi,
                "text_pair": spec.data.text_pair_column is not None, "max_seq_length": spec.training.max_seq_length,
                "model": spec.model.name, "lowercase": encoder.lowercase, "tokenizer": encoder.fingerprint,
                "source": str(path),
            },
        )

    # -- command line ------------------------------------------------------------------
    resumable_predict = True

    def cli_predict(self, predictor: TextClassifier, args: Any) -> Iterable[dict[str, Any]]:
        if args.question or args.context:
            raise DataError("--question/--context are for question-answering models; this model classifies texts (use --text).")
        if args.text:
            if args.text_pair is not None and len(args.text_pair) != len(args.text):
                raise DataError(f"got {len(args.text)} --text but {len(args.text_pair)} --text-pair; give one --text-pair per --text.")
            inputs = list(zip(args.text, args.text_pair)) if args.text_pair else list(args.text)
            return [{"text": t if isinstance(t, str) else t[0], **r} for t, r in zip(inputs, predictor.predict(inputs))]
        return _predicted_rows(predictor, Path(args.input), args)


def _predicted_rows(predictor: TextClassifier, path: Path, args: Any) -> Iterator[dict[str, Any]]:
    """One row per input row of ``path``, predicted as the file is read (memory stays flat on any length)."""
    examples = iter_examples(path, predictor.data_config(), require_labels=False)
    items = ((e.line, e.text if e.text_pair is None else (e.text, e.text_pair)) for e in examples)
    return predict_lines(items, predictor.predict, path, args, unit="row",
                         empty="no examples found. Check that the file is not empty and that data.header is right.")


def _record_labels(spec: TaskSpec) -> LabelMap:
    """Labels of TFRecord training shards: the spec's when it names them, else the shards' own."""
    saved = tfrecord.read_metadata(Path(spec.data.train)).get("labels")
    if spec.data.labels or spec.data.labels_file or not saved:
        return LabelMap.from_config(spec.data)
    return LabelMap(tuple(saved))
