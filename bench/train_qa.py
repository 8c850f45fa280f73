#!/usr/bin/env python
"""Fine-tune the packaged MiniLM for extractive QA on four of the five SQuAD 2.0 dev
articles in ../shared/data/squad and evaluate on the fifth, with bertbridge and, in the
same run, a Hugging Face ``run_qa.py``-style pipeline (``AutoModelForQuestionAnswering``
+ ``Trainer`` + the standard n-best post-processing with the v2 null score), on the same
split, model, windows, batch size, learning rate, epochs, schedule and seed. Both are
scored with the official SQuAD v2 evaluation (``bertbridge.core.tasks.qa.metrics``).

Prints one JSON line::

    {"bench": "train_qa", "backend": "pytorch", "exact_match": ..., "f1": ..., "has_ans_f1": ...,
     "no_ans_f1": ..., "train_samples_per_s": ..., "peer": "hf-run_qa", "peer_exact_match": ...,
     "peer_f1": ..., "peer_has_ans_f1": ..., "peer_train_samples_per_s": ..., ...}

``best_f1`` is the official v2 script's F1 at the best no-answer threshold (how much
the spans themselves are worth when the null threshold is tuned). ``train_samples_per_s`` counts training windows per second of each tool's own training
loop. The peer pads each batch to its longest window (DataCollatorWithPadding), the
faster of run_qa's two padding modes. Data: SQuAD 2.0 (Rajpurkar et al. 2018), CC BY-SA 4.0.

    python bench/train_qa.py [--backend pytorch] [--epochs 2] [--no-peer]
    python bench/train_qa.py --backend mxnet      # runs in BERTBRIDGE_MXNET_PYTHON / .venv-mxnet

A backend whose framework is not importable here runs in its own interpreter (a
subprocess of this run, like bench/train_classification.py); the peer runs here.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="pytorch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--max-seq-length", type=int, default=384)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default="minilm")
    p.add_argument("--eval-article", type=int, default=4, help="index of the held-out article (0-4)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "squad" / "dev-v2.0-5articles.json"))
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--worker", nargs=3, metavar=("TRAIN", "DEV", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args()


def split_articles(path: Path, held_out: int, tmp: Path) -> tuple[Path, Path, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    articles = data["data"]
    train = {"version": data.get("version", "v2.0"), "data": [a for i, a in enumerate(articles) if i != held_out]}
    dev = {"version": data.get("version", "v2.0"), "data": [articles[held_out]]}
    (tmp / "train.json").write_text(json.dumps(train), encoding="utf-8")
    (tmp / "dev.json").write_text(json.dumps(dev), encoding="utf-8")
    return tmp / "train.json", tmp / "dev.json", articles[held_out]["title"]


def run_bertbridge(args, train: Path, dev: Path, out: Path) -> dict:
    import bertbridge

    spec = {
        "task": {"type": "question_answering", "doc_stride": args.doc_stride, "max_question_length": 64},
        "data": {"train": str(train)},
        "model": {"name": args.model},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 64,
                     "learning_rate": args.learning_rate, "warmup_ratio": 0.1, "weight_decay": 0.01,
                     "max_grad_norm": 1.0, "max_seq_length": args.max_seq_length, "seed": args.seed, "log_interval": 1000},
        "backend": args.backend,
        "output_dir": str(out),
    }
    start = time.perf_counter()
    qa = bertbridge.train(spec)
    metrics = qa.evaluate(dev)
    result = qa.training_result
    return {"exact_match": metrics["exact"], "f1": metrics["f1"], "has_ans_f1": metrics.get("HasAns_f1", 0.0),
            "no_ans_f1": metrics.get("NoAns_f1", 0.0), "best_f1": metrics.get("best_f1"),
            "best_f1_thresh": metrics.get("best_f1_thresh"), "train_samples_per_s": result.train_samples_per_s,
            "train_seconds": result.train_seconds, "train_windows": int(qa.metrics["train_windows"]),
            "wall_s": time.perf_counter() - start}


def run_backend(args, train: Path, dev: Path, out: Path) -> dict:
    from bertbridge.core.forwarding import installed_here, interpreter_for
    from bertbridge.core.plugins.registry import backends

    if installed_here(backends().get(args.backend).requires):
        return run_bertbridge(args, train, dev, out)
    python = interpreter_for(args.backend) or str(ROOT / f".venv-{args.backend}" / "bin" / "python")
    argv = [python, __file__, "--worker", str(train), str(dev), str(out)]
    for flag in ("backend", "epochs", "batch_size", "learning_rate", "max_seq_length", "doc_stride", "seed", "model"):
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {args.backend} run failed in {python}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hf_postprocess(examples, features, start_logits, end_logits, n_best=20, max_answer_length=30, threshold=0.0):
    """The standard run_qa (utils_qa) post-processing for SQuAD v2: per example, the best
    start/end pairs over its windows against the minimum null score over its windows."""
    by_example = collections.defaultdict(list)
    for i, example_id in enumerate(features["example_id"]):
        by_example[example_id].append(i)
    answers = {}
    for ex in examples:
        best_null, candidates = None, []
        for i in by_example[ex["id"]]:
            s, e, offsets = start_logits[i], end_logits[i], features["offset_mapping"][i]
            null = s[0] + e[0]
            best_null = null if best_null is None or null < best_null else best_null
            for a in sorted(range(len(s)), key=lambda k: -s[k])[:n_best]:
                for b in sorted(range(len(e)), key=lambda k: -e[k])[:n_best]:
                    if a >= len(offsets) or b >= len(offsets) or offsets[a] is None or offsets[b] is None:
                        continue
                    if b < a or b - a + 1 > max_answer_length:
                        continue
                    candidates.append((s[a] + e[b], offsets[a][0], offsets[b][1]))
        best = max(candidates) if candidates else None
        if best is None or best_null - best[0] > threshold:
            answers[ex["id"]] = ""
        else:
            answers[ex["id"]] = ex["context"][best[1]:best[2]]
    return answers


def run_peer(args, train: Path, dev: Path, out: Path) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from bertbridge.core.plugins.registry import models
    from bertbridge.core.tasks.qa.metrics import evaluate
    from bertbridge.core.tasks.qa.squad import read_squad

    hf_logging.set_verbosity_error()
    model_dir = str(models().resolve(args.model))
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)

    def flat(path: Path) -> list[dict]:
        rows = []
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for para in article["paragraphs"]:
                for q in para["qas"]:
                    rows.append({"id": q["id"], "question": q["question"].lstrip(), "context": para["context"],
                                 "answers": q["answers"]})
        return rows

    def encode(rows, training: bool):
        enc = tok([r["question"] for r in rows], [r["context"] for r in rows], truncation="only_second",
                  max_length=args.max_seq_length, stride=args.doc_stride, return_overflowing_tokens=True,
                  return_offsets_mapping=True)
        mapping = enc.pop("overflow_to_sample_mapping")
        feats, ids, offsets = [], [], []
        for i, offs in enumerate(enc["offset_mapping"]):
            row = rows[mapping[i]]
            seq = enc.sequence_ids(i)
            item = {k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
            if training:
                s_pos = e_pos = 0
                if row["answers"]:
                    a0 = row["answers"][0]["answer_start"]
                    a1 = a0 + len(row["answers"][0]["text"])
                    ctx = [k for k, sid in enumerate(seq) if sid == 1]
                    if offs[ctx[0]][0] <= a0 and offs[ctx[-1]][1] >= a1:
                        s_pos = next(k for k in ctx if offs[k][1] > a0)
                        e_pos = next(k for k in reversed(ctx) if offs[k][0] < a1)
                item.update(start_positions=s_pos, end_positions=e_pos)
            feats.append(item)
            ids.append(row["id"])
            offsets.append([o if seq[k] == 1 else None for k, o in enumerate(offs)])
        return feats, {"example_id": ids, "offset_mapping": offsets}

    train_rows, dev_rows = flat(train), flat(dev)
    train_feats, _ = encode(train_rows, True)
    dev_feats, dev_meta = encode(dev_rows, False)
    torch.manual_seed(args.seed)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, weight_decay=0.01, warmup_ratio=0.1,
        max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed, report_to=[], save_strategy="no",
        logging_strategy="no", eval_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_feats, data_collator=DataCollatorWithPadding(tok))
    train_metrics = trainer.train().metrics
    pred = trainer.predict(dev_feats)
    start_logits, end_logits = pred.predictions
    lengths = [len(f["input_ids"]) for f in dev_feats]
    answers = hf_postprocess(dev_rows, dev_meta, [np.asarray(start_logits[i][:n]) for i, n in enumerate(lengths)],
                             [np.asarray(end_logits[i][:n]) for i, n in enumerate(lengths)])
    scores = evaluate(read_squad(dev).examples, answers)
    return {"peer_exact_match": scores["exact"], "peer_f1": scores["f1"], "peer_has_ans_f1": scores.get("HasAns_f1", 0.0),
            "peer_no_ans_f1": scores.get("NoAns_f1", 0.0),
            "peer_train_samples_per_s": train_metrics["train_samples_per_second"],
            "peer_train_seconds": train_metrics["train_runtime"], "peer_train_windows": len(train_feats),
            "peer_wall_s": time.perf_counter() - start}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
    if args.worker:
        with contextlib.redirect_stdout(io.StringIO()):
            result = run_bertbridge(args, Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]))
        print(json.dumps(result))
        return
    data = Path(args.data)
    if not data.is_file():
        raise SystemExit(f"SQuAD data not found at {data}; pass --data (a SQuAD v2.0 JSON with 5 articles)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, dev, title = split_articles(data, args.eval_article, tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # keep stdout to the one JSON line
            ours = run_backend(args, train, dev, tmp / "ours")
            peer = {} if args.no_peer else run_peer(args, train, dev, tmp / "peer")
    line = {"bench": "train_qa", "backend": args.backend, "model": args.model, "eval_article": title,
            "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
            "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride, **ours}
    if peer:
        line.update({"peer": "hf-run_qa", **peer})
    print(json.dumps({k: float(f"{v:.5g}") if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
