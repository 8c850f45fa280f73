#!/usr/bin/env python
"""Fine-tune on the first N SST-2 training rows and evaluate on SST-2 dev, with
bertbridge and, in the same process, the Hugging Face ``Trainer`` (same model,
data, batch size, learning rate, epochs, schedule, weight decay, clipping, seed).

Prints one JSON line::

    {"backend": "pytorch", "dev_accuracy": ..., "train_samples_per_s": ...,
     "peer": "hf-trainer", "peer_dev_accuracy": ..., "peer_train_samples_per_s": ...,
     "speedup": ours / peer, ...}

``train_samples_per_s`` is examples / seconds of each tool's own training loop
(the Trainer's ``train_runtime``; bertbridge's loop time, batching and collation
included); ``wall_s`` and ``peer_wall_s`` are end to end (load, tokenize, train,
evaluate). Data: GLUE SST-2 (Socher et al. 2013), from ../shared/data/sst2.

    python bench/train_classification.py [--backend pytorch] [--rows 2000] [--epochs 1]
    python bench/train_classification.py --backend tensorflow --compare pytorch

``--compare B`` also trains with backend B in the same run and adds
``reference_backend``, ``reference_dev_accuracy``, ``reference_train_samples_per_s``
and ``time_ratio_vs_reference`` (our training time / B's; below 1.5 is the target).

A backend whose framework is not importable here (mxnet: its own environment) runs in
the interpreter of ``BERTBRIDGE_<BACKEND>_PYTHON`` (default ``.venv-mxnet/bin/python``),
in a subprocess of this run; the Trainer peer runs here::

    python bench/train_classification.py --backend mxnet --compare pytorch
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import trainer_warmup  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="pytorch")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default="minilm")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    p.add_argument("--mixed-precision", action="store_true", help="bf16 autocast in both tools")
    p.add_argument("--compare", metavar="BACKEND", help="also train with this backend (e.g. pytorch)")
    p.add_argument("--no-peer", action="store_true", help="skip the Hugging Face Trainer run")
    p.add_argument("--worker", nargs=3, metavar=("TRAIN", "DEV", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args()


def run_backend(args, train_path: Path, dev_path: Path, out: Path, backend: str) -> dict:
    """bertbridge with ``backend``: here when its framework is importable, else in its own environment."""
    from bertbridge.core.forwarding import installed_here, interpreter_for
    from bertbridge.core.plugins.registry import backends

    if installed_here(backends().get(backend).requires):
        return run_bertbridge(args, train_path, dev_path, out, backend)
    import subprocess

    python = interpreter_for(backend) or str(ROOT / f".venv-{backend}" / "bin" / "python")
    argv = [python, __file__, "--worker", str(train_path), str(dev_path), str(out), "--backend", backend]
    for flag in ("rows", "epochs", "batch_size", "learning_rate", "max_seq_length", "seed", "model"):
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.mixed_precision:
        argv.append("--mixed-precision")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {backend} run failed in {python}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def head_rows(src: Path, rows: int, dst: Path) -> None:
    with open(src, encoding="utf-8") as fh:
        lines = fh.readlines()
    if len(lines) <= rows:
        raise SystemExit(f"{src} has only {len(lines) - 1} rows; asked for {rows}")
    dst.write_text("".join(lines[: rows + 1]), encoding="utf-8")


def run_bertbridge(args, train_path: Path, dev_path: Path, out: Path, backend: str) -> dict:
    import bertbridge

    spec = {
        "data": {"train": str(train_path), "text_column": "sentence", "label_column": "label", "labels": ["0", "1"]},
        "model": {"name": args.model},
        "training": {
            "epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 64,
            "learning_rate": args.learning_rate, "warmup_ratio": 0.0, "weight_decay": 0.0,
            "max_grad_norm": 1.0, "max_seq_length": args.max_seq_length, "seed": args.seed,
            "log_interval": 1000, "mixed_precision": args.mixed_precision,
        },
        "backend": backend,
        "output_dir": str(out),
    }
    start = time.perf_counter()
    clf = bertbridge.train(spec)
    metrics = clf.evaluate(dev_path)
    wall = time.perf_counter() - start
    result = clf.training_result
    return {
        "dev_accuracy": metrics["accuracy"],
        "train_samples_per_s": result.train_samples_per_s,
        "train_seconds": result.train_seconds,
        "wall_s": wall,
    }


def run_trainer(args, train_path: Path, dev_path: Path, out: Path) -> dict:
    import csv

    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from bertbridge.core.plugins.registry import models

    hf_logging.set_verbosity_error()
    model_dir = str(models().resolve(args.model))
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)

    def load(path: Path) -> list[dict]:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        enc = tok([r["sentence"] for r in rows], truncation=True, max_length=args.max_seq_length)
        return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                 "attention_mask": enc["attention_mask"][i], "labels": int(r["label"])} for i, r in enumerate(rows)]

    train_ds, dev_ds = load(train_path), load(dev_path)
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, weight_decay=0.0, **trainer_warmup(0.0),
        max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed, report_to=[], save_strategy="no",
        logging_strategy="no", eval_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
        bf16=args.mixed_precision,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, data_collator=DataCollatorWithPadding(tok))
    train_metrics = trainer.train().metrics
    pred = trainer.predict(dev_ds)
    accuracy = float((np.argmax(pred.predictions, axis=1) == pred.label_ids).mean())
    return {
        "peer_dev_accuracy": accuracy,
        "peer_train_samples_per_s": train_metrics["train_samples_per_second"],
        "peer_train_seconds": train_metrics["train_runtime"],
        "peer_wall_s": time.perf_counter() - start,
    }


def main() -> None:
    args = parse_args()
    if args.worker:
        import contextlib
        import io

        os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
        with contextlib.redirect_stdout(io.StringIO()):
            result = run_bertbridge(args, Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]), args.backend)
        print(json.dumps(result))
        return
    data = Path(args.data_dir)
    if not (data / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {data}; pass --data-dir (needs train.tsv and dev.tsv)")
    os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_path = tmp / "train.tsv"
        head_rows(data / "train.tsv", args.rows, train_path)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # keep stdout to the one JSON line
            ours = run_backend(args, train_path, data / "dev.tsv", tmp / "ours", args.backend)
            ref = run_backend(args, train_path, data / "dev.tsv", tmp / "ref", args.compare) if args.compare else {}
            peer = {} if args.no_peer else run_trainer(args, train_path, data / "dev.tsv", tmp / "peer")
    import torch

    line = {
        "bench": "train_classification", "backend": args.backend, "model": args.model, "rows": args.rows,
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "mixed_precision": args.mixed_precision,
        "threads": torch.get_num_threads(), **ours,
    }
    if ref:
        line.update({
            "reference_backend": args.compare,
            "reference_dev_accuracy": ref["dev_accuracy"],
            "reference_train_samples_per_s": ref["train_samples_per_s"],
            "time_ratio_vs_reference": ref["train_samples_per_s"] / ours["train_samples_per_s"],
        })
    if peer:
        line.update({"peer": "hf-trainer", **peer, "speedup": ours["train_samples_per_s"] / peer["peer_train_samples_per_s"]})
    print(json.dumps({k: float(f"{v:.5g}") if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
