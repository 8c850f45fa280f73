#!/usr/bin/env python
"""Long documents: the packaged MiniLM trained on SST-2 "reviews" far longer than 128 tokens, with
``task.long_text`` windows and, in the same run, the same model cut at 128 tokens.

A document is 40 SST-2 sentences in random order: 26 with the document's label and 14 with the
other, so the label is the majority and no single stretch of the text decides it. Training
documents are built from SST-2 train sentences, evaluation documents from SST-2 dev and test
sentences (each sentence used once). Both runs use the same model, documents, learning rate,
epochs, batch size and seed; they differ only in ``task.long_text``.

Prints one JSON line::

    {"bench": "long_documents", "backend": "pytorch", "documents": {"train": 300, "eval": 66},
     "windows_accuracy": ..., "truncated_accuracy": ..., "difference": ..., "tokens_per_document": ...,
     "train_windows": ..., "windows_train_s": ..., "truncated_train_s": ..., ...}

    python bench/long_documents.py [--backend pytorch] [--train-documents 300] [--aggregate mean]

Data: GLUE SST-2 (Socher et al. 2013), from ../shared/data/sst2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES, MAJORITY = 40, 26
LABELS = ("negative", "positive")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="pytorch")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    p.add_argument("--train-documents", type=int, default=300)
    p.add_argument("--eval-documents", type=int, default=0, help="0: as many as SST-2 dev + test allow")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--stride", type=int, default=32)
    p.add_argument("--max-windows", type=int, default=16)
    p.add_argument("--aggregate", default="mean", choices=["mean", "max", "first"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default="minilm")
    return p.parse_args(argv)


def read_sentences(path: Path) -> dict[str, list[str]]:
    """SST-2 sentences by label name (the header row skipped)."""
    by_label: dict[str, list[str]] = {name: [] for name in LABELS}
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            text, _, label = line.rstrip("\n").rpartition("\t")
            if text.strip():
                by_label[LABELS[int(label)]].append(" ".join(text.split()))
    return by_label


def build_documents(by_label: dict[str, list[str]], count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` documents (0: as many as the sentences allow), labels alternating, each sentence used once."""
    pools = {name: rng.sample(sentences, len(sentences)) for name, sentences in by_label.items()}
    documents = []
    while count == 0 or len(documents) < count:
        label = LABELS[len(documents) % 2]
        other = LABELS[1 - LABELS.index(label)]
        if len(pools[label]) < MAJORITY or len(pools[other]) < SENTENCES - MAJORITY:
            if count:
                raise SystemExit(f"not enough SST-2 sentences for {count} documents")
            break
        sentences = [pools[label].pop() for _ in range(MAJORITY)] + [pools[other].pop() for _ in range(SENTENCES - MAJORITY)]
        rng.shuffle(sentences)
        documents.append((" ".join(sentences), label))
    return documents


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


def train_once(args, train: Path, dev: Path, out: Path, long_text: bool) -> dict:
    import bertbridge

    spec = {
        "task": {"long_text": {"stride": args.stride, "max_windows": args.max_windows, "aggregate": args.aggregate}} if long_text else {},
        "data": {"train": str(train), "validation": str(dev), "labels": list(LABELS)},
        "model": {"name": args.model},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                     "max_seq_length": args.max_seq_length, "seed": args.seed, "log_interval": 1000},
        "output_dir": str(out),
    }
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        model = bertbridge.train(spec, backend=args.backend)
    cut = [str(w.message) for w in caught if "were cut to it" in str(w.message)]
    return {"accuracy": model.metrics["accuracy"], "train_s": model.metrics["train_seconds"],
            "train_windows": model.metrics.get("train_windows"), "warnings": cut}


def tokens_per_document(args, rows: list[tuple[str, str]]) -> float:
    from bertbridge.core.plugins.registry import models
    from bertbridge.core.text.tokenize import TextEncoder

    encoder = TextEncoder.from_pretrained(models().resolve(args.model))
    return sum(len(encoder.tokens(text)) for text, _ in rows) / len(rows)


def run(args) -> dict:
    rng = random.Random(args.seed)
    data = Path(args.data_dir)
    train_rows = build_documents(read_sentences(data / "train.tsv"), args.train_documents, rng)
    held_out = read_sentences(data / "dev.tsv")
    for name, sentences in read_sentences(data / "test.tsv").items():
        held_out[name] += sentences
    eval_rows = build_documents(held_out, args.eval_documents, rng)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, dev = write_tsv(tmp / "train.tsv", train_rows), write_tsv(tmp / "dev.tsv", eval_rows)
        windowed = train_once(args, train, dev, tmp / "windows", long_text=True)
        truncated = train_once(args, train, dev, tmp / "truncated", long_text=False)
    return {
        "bench": "long_documents", "backend": args.backend, "model": args.model,
        "documents": {"train": len(train_rows), "eval": len(eval_rows)},
        "sentences_per_document": SENTENCES, "majority_sentences": MAJORITY,
        "tokens_per_document": {"train": tokens_per_document(args, train_rows), "eval": tokens_per_document(args, eval_rows)},
        "windows_accuracy": windowed["accuracy"], "truncated_accuracy": truncated["accuracy"],
        "difference": windowed["accuracy"] - truncated["accuracy"],
        "train_windows": windowed["train_windows"], "windows_train_s": windowed["train_s"], "truncated_train_s": truncated["train_s"],
        "truncation_warning": truncated["warnings"][:1],
        "max_seq_length": args.max_seq_length, "stride": args.stride, "max_windows": args.max_windows, "aggregate": args.aggregate,
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
    }


def main() -> None:
    args = parse_args()
    os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
    from bertbridge.core.forwarding import installed_here, interpreter_for
    from bertbridge.core.plugins.registry import backends

    if not installed_here(backends().get(args.backend).requires) and not os.environ.get("BERTBRIDGE_FORWARDED"):
        python = interpreter_for(args.backend) or str(ROOT / f".venv-{args.backend}" / "bin" / "python")
        done = subprocess.run([python, __file__, *sys.argv[1:]], env={**os.environ, "BERTBRIDGE_FORWARDED": "1"})
        raise SystemExit(done.returncode)
    started = time.perf_counter()
    line = run(args)
    line["wall_s"] = time.perf_counter() - started
    print(json.dumps(_rounded(line)))


def _rounded(value):
    """Five significant digits (a learning rate of 5e-5 stays 5e-05)."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
