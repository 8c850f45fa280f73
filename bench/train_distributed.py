#!/usr/bin/env python
"""Data-parallel vs single-process training with the same global batch, per backend, and
the same comparison for the peer tool (Hugging Face ``Trainer`` under ``torchrun``, DDP/gloo).

Each run fine-tunes the packaged MiniLM on the first N SST-2 training rows (global batch 32,
1 epoch by default) and is scored on SST-2 dev (872 sentences). bertbridge runs through its
CLI (``bertbridge train SPEC --set distribution.processes_per_host=P``; MXNet is forwarded to
its own environment), so ``wall_s`` is end to end: start-up, tokenizing, the workers, the
final evaluation and the save. ``train_seconds`` is rank 0's training-loop time. Prints one
JSON line::

    {"rows": 2000, "processes": 2, "pytorch": {"one": {...}, "two": {...}, "accuracy_gap": ...},
     "tensorflow": {...}, "mxnet": {...}, "peer": "hf-trainer+torchrun", "peer_one": {...}, "peer_two": {...}}

On a 2-core machine two workers share the cores one process would use, so the wall times
show the engines' overhead, not a speed-up; the point is that the accuracy stays within a
point. Data: GLUE SST-2 (Socher et al. 2013), from ../shared/data/sst2.

    python bench/train_distributed.py [--backends pytorch,tensorflow,mxnet] [--rows 2000] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import trainer_warmup  # noqa: E402
from train_classification import head_rows  # noqa: E402

BATCH = 32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="pytorch,tensorflow,mxnet")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--seeds", default="42", help="comma-separated seeds; accuracies are averaged over them (dropout "
                   "draws differ between 1 and 2 workers, so one seed's gap is partly noise)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    p.add_argument("--no-peer", action="store_true", help="skip the Hugging Face Trainer runs")
    p.add_argument("--peer-worker", nargs=3, metavar=("TRAIN", "DEV", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args()


def bertbridge_run(args, backend: str, processes: int, train: Path, dev: Path, out: Path) -> dict:
    spec = {
        "data": {"train": str(train), "text_column": "sentence", "label_column": "label", "labels": ["0", "1"]},
        "model": {"name": "minilm"},
        "training": {"epochs": args.epochs, "batch_size": BATCH, "eval_batch_size": 64, "learning_rate": args.learning_rate,
                     "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0, "max_seq_length": 128,
                     "seed": args.seed, "log_interval": 1000},
        "distribution": {"processes_per_host": processes},
        "backend": backend,
        "output_dir": str(out / "model"),
    }
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(spec))
    bb = [sys.executable, "-m", "bertbridge"]
    start = time.perf_counter()
    run = subprocess.run([*bb, "train", str(out / "spec.json")], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"{backend} x{processes} failed:\n{run.stderr[-3000:]}")
    scored = subprocess.run([*bb, "evaluate", str(out / "model"), str(dev), "--json"], capture_output=True, text=True)
    if scored.returncode:
        raise SystemExit(f"evaluating {backend} x{processes} failed:\n{scored.stderr[-3000:]}")
    metrics = json.loads((out / "model" / "bertbridge.json").read_text())["metrics"]
    return {"dev_accuracy": round(json.loads(scored.stdout)["accuracy"], 4), "wall_s": round(wall, 1),
            "train_seconds": round(metrics["train_seconds"], 1), "world_size": int(metrics["world_size"])}


def peer_worker(args, train: Path, dev: Path, out: Path) -> None:
    """One process of the Trainer run (under torchrun when several): per-device batch = 32 / world."""
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
    world = int(os.environ.get("WORLD_SIZE", "1"))
    model_dir = str(models().resolve("minilm"))
    tok = AutoTokenizer.from_pretrained(model_dir)

    def load(path: Path) -> list[dict]:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        enc = tok([r["sentence"] for r in rows], truncation=True, max_length=128)
        return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                 "attention_mask": enc["attention_mask"][i], "labels": int(r["label"])} for i, r in enumerate(rows)]

    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH // world, per_device_eval_batch_size=64,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, weight_decay=0.0, **trainer_warmup(0.0),
        max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed, report_to=[], save_strategy="no",
        logging_strategy="no", eval_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
        ddp_backend="gloo" if world > 1 else None,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=load(train), data_collator=DataCollatorWithPadding(tok))
    train_metrics = trainer.train().metrics
    pred = trainer.predict(load(dev))
    if int(os.environ.get("RANK", "0")) == 0:
        accuracy = float((np.argmax(pred.predictions, axis=1) == pred.label_ids).mean())
        (out / "result.json").write_text(json.dumps({"dev_accuracy": round(accuracy, 4),
                                                     "train_seconds": round(train_metrics["train_runtime"], 1)}))


def peer_run(args, processes: int, train: Path, dev: Path, out: Path) -> dict:
    out.mkdir(parents=True)
    me = [str(Path(__file__).resolve()), "--peer-worker", str(train), str(dev), str(out), "--seed", str(args.seed),
          "--epochs", str(args.epochs), "--learning-rate", str(args.learning_rate)]
    if processes > 1:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
               "--master-addr", "127.0.0.1", "--master-port", str(port), *me]
    else:
        cmd = [sys.executable, *me]
    start = time.perf_counter()
    env = {**os.environ, "USE_TF": "0",  # the Trainer needs no TensorFlow (and this one's Keras 3 is not for it)
           "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"peer x{processes} failed:\n{run.stderr[-3000:]}")
    return {**json.loads((out / "result.json").read_text()), "wall_s": round(wall, 1)}


def _summary(runs: dict) -> dict:
    """Per setting: mean accuracy and times over the seeds, plus each seed's accuracy; the gap in points."""
    out = {}
    for key, results in runs.items():
        mean = lambda field: round(sum(r[field] for r in results) / len(results), 4)  # noqa: E731
        out[key] = {"dev_accuracy": mean("dev_accuracy"), "dev_accuracy_per_seed": [r["dev_accuracy"] for r in results],
                    "wall_s": round(mean("wall_s"), 1), "train_seconds": round(mean("train_seconds"), 1)}
    out["accuracy_gap_points"] = round(100 * abs(out["one"]["dev_accuracy"] - out["two"]["dev_accuracy"]), 2)
    return out


def main() -> None:
    args = parse_args()
    if args.peer_worker:
        peer_worker(args, *map(Path, args.peer_worker))
        return
    data = Path(args.data_dir)
    if not (data / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {data}; pass --data-dir (needs train.tsv and dev.tsv)")
    os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
    mx = ROOT / ".venv-mxnet" / "bin" / "python"
    if mx.is_file():
        os.environ.setdefault("BERTBRIDGE_MXNET_PYTHON", str(mx))
    line: dict = {"rows": args.rows, "epochs": args.epochs, "global_batch": BATCH, "processes": args.processes,
                  "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = tmp / "train.tsv"
        head_rows(data / "train.tsv", args.rows, train)
        dev = data / "dev.tsv"
        seeds = [int(x) for x in args.seeds.split(",")]
        for backend in [b for b in args.backends.split(",") if b]:
            runs = {"one": [], "two": []}
            for seed in seeds:
                args.seed = seed
                runs["one"].append(bertbridge_run(args, backend, 1, train, dev, tmp / backend / f"one-{seed}"))
                runs["two"].append(bertbridge_run(args, backend, args.processes, train, dev, tmp / backend / f"two-{seed}"))
            line[backend] = _summary(runs)
            print(f"{backend}: {json.dumps(line[backend])}", file=sys.stderr, flush=True)
        if not args.no_peer:
            runs = {"one": [], "two": []}
            for seed in seeds:
                args.seed = seed
                runs["one"].append(peer_run(args, 1, train, dev, tmp / "peer" / f"one-{seed}"))
                runs["two"].append(peer_run(args, args.processes, train, dev, tmp / "peer" / f"two-{seed}"))
            line["peer"] = "hf-trainer+torchrun"
            line["peer_result"] = _summary(runs)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
