#!/usr/bin/env python
"""Fine-tune the packaged MiniLM for extractive QA on real SQuAD v1.1 articles, with
bertbridge and, in the same run, a Hugging Face ``run_qa.py``-style peer
(``AutoModelForQuestionAnswering`` + ``Trainer`` + the standard n-best post-processing),
on the same split, model, windows, batch size, learning rate, epochs, schedule and
seed; both scored with the official SQuAD evaluation rules
(``bertbridge.core.tasks.qa.metrics``; v1.1 rules for v1.1 data).

The only SQuAD data here is the official v1.1 DEV set (48 articles), so it is split by
article: by default articles 0-39 train and 40-47 evaluate (1,589 questions). Articles
never share paragraphs, so nothing leaks. ``--train-questions N`` keeps the first N
training questions (in file order) so that a run fits in about 30 minutes on 2 cores.

Prints one JSON line::

    {"bench": "train_qa", "backend": "pytorch", "exact_match": ..., "f1": ...,
     "train_samples_per_s": ..., "peer": "hf-run_qa", "peer_exact_match": ..., "peer_f1": ...,
     "peer_train_samples_per_s": ..., "speedup": ..., "f1_diff_ci95": [lo, hi],
     "train_questions": ..., "eval_questions": ..., "window_mismatches": 0, "wall_s": ...}

``train_samples_per_s`` counts training windows per second of each tool's own training
loop; ``speedup`` is ours / the peer's. ``f1_diff_ci95`` is a paired bootstrap (2,000
resamples of the evaluation questions) of ``f1 - peer_f1``: an interval holding 0 means
the two tools' difference is within what the choice of questions explains.
``window_mismatches`` counts training windows whose tokens or start/end labels differ
between bertbridge's windowing and the peer's (``return_overflowing_tokens``); 0 means
both learn from exactly the same windows and labels. The peer pads each batch to its
longest window (``DataCollatorWithPadding``), the faster of run_qa's two padding modes.

    python bench/train_qa.py [--backend pytorch] [--train-questions 3000] [--no-peer]
    python bench/train_qa.py --backend mxnet --no-peer   # runs in BERTBRIDGE_MXNET_PYTHON / .venv-mxnet
    python bench/train_qa.py --data ../shared/data/squad/dev-v2.0-5articles.json --train-articles 0-3 --eval-articles 4-4

A backend whose framework is not importable here runs in its own interpreter (a
subprocess of this run, like bench/train_classification.py); the peer runs here.
Data: SQuAD (Rajpurkar et al. 2016, 2018), CC BY-SA 4.0.
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
sys.path.insert(0, str(ROOT / "bench"))
from _common import trainer_warmup  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad"
EXPORT_FORMATS = ("onnx", "pt2", "savedmodel")
FORWARDED = ("backend", "epochs", "batch_size", "learning_rate", "max_seq_length", "doc_stride", "seed", "model")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="pytorch")
    p.add_argument("--data", default=str(SQUAD / "dev-v1.1.json"), help="a SQuAD v1.1 or v2.0 JSON file")
    p.add_argument("--train-articles", default="0-39", type=_range, help="article indices A-B (inclusive) to train on")
    p.add_argument("--eval-articles", default="40-47", type=_range, help="article indices C-D (inclusive) to evaluate on")
    p.add_argument("--train-questions", type=int, default=3000, help="keep the first N training questions (0: all)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--max-seq-length", type=int, default=384)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default="minilm")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="hidden and attention dropout of the model, for both tools (default 0: see bench/README.md; "
                        "-1 keeps the model's own, 0.1 for MiniLM)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a bertbridge spec override, as 'bertbridge train --set' takes (repeatable)")
    p.add_argument("--check-exports", type=_formats, default=(), metavar="FMT[,FMT...]",
                   help=f"also export the trained model ({', '.join(EXPORT_FORMATS)}) and answer the evaluation questions "
                        "with each export; reports <fmt>_f1 and <fmt>_same_answers (the share answered as the model does)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--no-peer", action="store_true", help="train bertbridge only")
    only.add_argument("--peer-only", action="store_true", help="train the peer only (more seeds of it, say)")
    p.add_argument("--worker", nargs=3, metavar=("TRAIN", "DEV", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected export formats from {', '.join(EXPORT_FORMATS)}, got {text!r}")
    return names


def _range(text: str) -> tuple[int, int]:
    try:
        a, _, b = text.partition("-")
        first, last = int(a), int(b or a)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range of article indices like 0-39, got {text!r}") from None
    if first < 0 or last < first:
        raise argparse.ArgumentTypeError(f"expected A-B with 0 <= A <= B, got {text!r}")
    return first, last


# -- data ------------------------------------------------------------------------------
def with_dropout(model: str, rate: float, out: Path) -> Path:
    """A view of ``model``'s folder whose config has ``rate`` as its hidden and attention dropout
    (the other files are links), so bertbridge and the peer train the same model."""
    from bertbridge.core.plugins.registry import models

    source = models().resolve(model)
    out.mkdir()
    for item in source.iterdir():
        if item.name != "config.json":
            (out / item.name).symlink_to(item.resolve())
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=rate, attention_probs_dropout_prob=rate)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def split_articles(path: Path, train_range, eval_range, train_questions: int, tmp: Path) -> dict:
    """Write train.json / dev.json from article ranges; the first ``train_questions`` training questions."""
    data = json.loads(path.read_text(encoding="utf-8"))
    articles = data["data"]
    for name, (a, b) in (("--train-articles", train_range), ("--eval-articles", eval_range)):
        if b >= len(articles):
            raise SystemExit(f"{name} {a}-{b}: {path} has articles 0-{len(articles) - 1}")
    if max(train_range[0], eval_range[0]) <= min(train_range[1], eval_range[1]):
        raise SystemExit(f"--train-articles and --eval-articles overlap ({train_range} / {eval_range}): that leaks answers")
    train = _first_questions(articles[train_range[0] : train_range[1] + 1], train_questions)
    dev = articles[eval_range[0] : eval_range[1] + 1]
    version = data.get("version", "1.1")
    (tmp / "train.json").write_text(json.dumps({"version": version, "data": train}), encoding="utf-8")
    (tmp / "dev.json").write_text(json.dumps({"version": version, "data": dev}), encoding="utf-8")
    return {"train": tmp / "train.json", "dev": tmp / "dev.json", "train_questions": _count(train),
            "eval_questions": _count(dev), "eval_articles": [a["title"] for a in dev]}


def _first_questions(articles: list, limit: int) -> list:
    if limit <= 0:
        return articles
    kept, left = [], limit
    for article in articles:
        paragraphs = []
        for para in article["paragraphs"]:
            if left <= 0:
                break
            qas = para["qas"][:left]
            left -= len(qas)
            paragraphs.append({**para, "qas": qas})
        if paragraphs:
            kept.append({**article, "paragraphs": paragraphs})
        if left <= 0:
            break
    return kept


def _count(articles: list) -> int:
    return sum(len(p["qas"]) for a in articles for p in a["paragraphs"])


def flat(path: Path) -> list[dict]:
    """The peer's view of a SQuAD file: one row per question (run_qa's datasets columns)."""
    rows = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for q in para["qas"]:
                rows.append({"id": q["id"], "question": q["question"].lstrip(), "context": para["context"],
                             "answers": q["answers"]})
    return rows


# -- bertbridge ------------------------------------------------------------------------
def run_bertbridge(args, train: Path, dev: Path, out: Path) -> dict:
    import bertbridge
    from bertbridge.core.tasks.qa.metrics import evaluate, f1

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
    qa = bertbridge.train(spec, overrides=args.overrides)
    split = qa.read_split(dev)
    eval_start = time.perf_counter()
    predictions = qa.answer(split.squad.examples, split.features)
    eval_seconds = time.perf_counter() - eval_start
    answers = {p.id: p.text for p in predictions}
    scores = evaluate(split.squad.examples, answers)
    result = qa.training_result
    exports = {}
    for fmt in args.check_exports:
        exports.update(export_agreement(qa, fmt, dev, answers, out.parent / fmt))
    return {**exports, "exact_match": scores["exact"], "f1": scores["f1"], "train_samples_per_s": result.train_samples_per_s,
            "train_seconds": result.train_seconds, "train_windows": int(qa.metrics["train_windows"]),
            "eval_seconds": eval_seconds, "wall_s": time.perf_counter() - start,
            "per_question_f1": [f1(answers[e.id], [a.text for a in e.answers], v2=split.squad.v2) for e in split.squad.examples]}


def export_agreement(qa, fmt: str, dev: Path, answers: dict, out: Path) -> dict:
    """The trained model exported as ``fmt`` answering the evaluation questions: its F1 and the share of
    questions it answers exactly as the model does. ONNX runs on the onnx backend and pt2 on the pytorch
    backend (as ``bertbridge serve`` runs them); the SavedModel's serving signature runs in TensorFlow,
    with bertbridge's windows and post-processing (what its TF Serving handler does)."""
    import copy

    import bertbridge
    from bertbridge.core.tasks.qa.metrics import evaluate

    written = bertbridge.export(qa.path, fmt, out)
    if fmt == "savedmodel":
        served = copy.copy(qa)
        served.model = _SignatureModel(written)
    else:
        served = bertbridge.load(written.parent, backend="onnx" if fmt == "onnx" else "pytorch")
    split = served.read_split(dev)
    start = time.perf_counter()
    theirs = {p.id: p.text for p in served.answer(split.squad.examples, split.features)}
    seconds = time.perf_counter() - start
    return {f"{fmt}_f1": evaluate(split.squad.examples, theirs)["f1"], f"{fmt}_eval_seconds": seconds,
            f"{fmt}_same_answers": sum(theirs[k] == v for k, v in answers.items()) / len(answers)}


class _SignatureModel:
    """A SavedModel's ``serving_default`` signature as the inference contract's ``logits`` (B, T, 2)."""

    def __init__(self, version_dir: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    def logits(self, batch):
        import numpy as np

        out = self._signature(**{k: self._tf.constant(v, dtype=self._tf.int64) for k, v in batch.items()
                                 if k in ("input_ids", "attention_mask", "token_type_ids")})
        return np.stack([out["start_logits"].numpy(), out["end_logits"].numpy()], axis=-1)


def run_backend(args, train: Path, dev: Path, out: Path) -> dict:
    from bertbridge.core.forwarding import installed_here, interpreter_for
    from bertbridge.core.plugins.registry import backends

    if installed_here(backends().get(args.backend).requires):
        return run_bertbridge(args, train, dev, out)
    if args.check_exports:
        raise SystemExit(f"--check-exports runs here; {args.backend} runs in another interpreter. Drop the flag.")
    python = interpreter_for(args.backend) or str(ROOT / f".venv-{args.backend}" / "bin" / "python")
    argv = [python, __file__, "--worker", str(train), str(dev), str(out)]
    for flag in FORWARDED:
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for item in args.overrides:
        argv += ["--set", item]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {args.backend} run failed in {python}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the Hugging Face peer -------------------------------------------------------------
def peer_encode(tok, rows: list[dict], max_seq_length: int, doc_stride: int, training: bool):
    """run_qa.py's prepare_train_features / prepare_validation_features."""
    enc = tok([r["question"] for r in rows], [r["context"] for r in rows], truncation="only_second",
              max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
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


def hf_postprocess(examples, features, start_logits, end_logits, n_best=20, max_answer_length=30, v2=False, threshold=0.0):
    """utils_qa.postprocess_qa_predictions: per example, the best start/end pair over its windows
    (n_best starts x n_best ends, context tokens only, end >= start, at most max_answer_length
    tokens); for SQuAD v2 the null score (min over windows of CLS start + end) wins when it is
    better than the best span by more than ``threshold``."""
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
        if best is None or (v2 and best_null - best[0] > threshold):
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
    from bertbridge.core.tasks.qa.metrics import evaluate, f1
    from bertbridge.core.tasks.qa.squad import read_squad

    hf_logging.set_verbosity_error()
    model_dir = str(models().resolve(args.model))
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    train_rows, dev_rows = flat(train), flat(dev)
    train_feats, _ = peer_encode(tok, train_rows, args.max_seq_length, args.doc_stride, True)
    dev_feats, dev_meta = peer_encode(tok, dev_rows, args.max_seq_length, args.doc_stride, False)
    torch.manual_seed(args.seed)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, weight_decay=0.01, **trainer_warmup(0.1),
        max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed, report_to=[], save_strategy="no",
        logging_strategy="no", eval_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_feats, data_collator=DataCollatorWithPadding(tok))
    train_metrics = trainer.train().metrics
    eval_start = time.perf_counter()
    pred = trainer.predict(dev_feats)
    start_logits, end_logits = pred.predictions
    lengths = [len(f["input_ids"]) for f in dev_feats]
    squad = read_squad(dev)
    answers = hf_postprocess(dev_rows, dev_meta, [np.asarray(start_logits[i][:n]) for i, n in enumerate(lengths)],
                             [np.asarray(end_logits[i][:n]) for i, n in enumerate(lengths)], v2=squad.v2)
    eval_seconds = time.perf_counter() - eval_start
    scores = evaluate(squad.examples, answers)
    # the peer's own logits through bertbridge's post-processing: tells post-processing apart from training
    ours = _bertbridge_postprocess(args, squad, [s[:n] for s, n in zip(start_logits, lengths)],
                                   [e[:n] for e, n in zip(end_logits, lengths)])
    return {"peer_exact_match": scores["exact"], "peer_f1": scores["f1"],
            "peer_f1_bertbridge_postprocess": evaluate(squad.examples, ours)["f1"] if ours else None,
            "peer_train_samples_per_s": train_metrics["train_samples_per_second"],
            "peer_train_seconds": train_metrics["train_runtime"], "peer_train_windows": len(train_feats),
            "peer_eval_seconds": eval_seconds, "peer_wall_s": time.perf_counter() - start,
            "peer_per_question_f1": [f1(answers[e.id], [a.text for a in e.answers], v2=squad.v2) for e in squad.examples]}


def _bertbridge_postprocess(args, squad, start_logits, end_logits) -> dict:
    from bertbridge.core.plugins.registry import models
    from bertbridge.core.tasks.qa.features import build_features
    from bertbridge.core.tasks.qa.postprocess import postprocess
    from bertbridge.core.text.tokenize import TextEncoder

    feats = build_features(squad.examples, TextEncoder.from_pretrained(models().resolve(args.model)),
                           max_seq_length=args.max_seq_length, doc_stride=args.doc_stride)
    if len(feats) != len(start_logits):
        return {}
    return {p.id: p.text for p in postprocess(squad.examples, feats, start_logits, end_logits, v2=squad.v2)}


# -- comparisons -----------------------------------------------------------------------
def window_mismatches(args, train: Path) -> int:
    """Training windows (tokens, segments, start/end labels) that differ between bertbridge's
    windowing and the peer's; -1 when the window counts differ."""
    from transformers import AutoTokenizer

    from bertbridge.core.plugins.registry import models
    from bertbridge.core.tasks.qa.features import build_features
    from bertbridge.core.tasks.qa.squad import read_squad
    from bertbridge.core.text.tokenize import TextEncoder

    model_dir = models().resolve(args.model)
    ours = build_features(read_squad(train).examples, TextEncoder.from_pretrained(model_dir),
                          max_seq_length=args.max_seq_length, doc_stride=args.doc_stride, training=True)
    theirs, _ = peer_encode(AutoTokenizer.from_pretrained(str(model_dir)), flat(train), args.max_seq_length, args.doc_stride, True)
    if len(theirs) != len(ours):
        return -1
    return sum(
        list(ours.input_ids[i]) != f["input_ids"] or list(ours.token_type_ids[i]) != f["token_type_ids"]
        or (int(ours.start_positions[i]), int(ours.end_positions[i])) != (f["start_positions"], f["end_positions"])
        for i, f in enumerate(theirs)
    )


def paired_bootstrap(ours: list[float], theirs: list[float], resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of mean(ours - theirs) * 100 over resampled questions."""
    import numpy as np

    diff = np.asarray(ours, dtype=float) - np.asarray(theirs, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1) * 100
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def main() -> None:
    args = parse_args()
    if args.check_exports and args.peer_only:
        raise SystemExit("--check-exports checks bertbridge's model, which --peer-only does not train.")
    os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")
    if args.worker:
        with contextlib.redirect_stdout(io.StringIO()):
            result = run_bertbridge(args, Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]))
        print(json.dumps(result))
        return
    data = Path(args.data)
    if not data.is_file():
        raise SystemExit(f"SQuAD data not found at {data}; pass --data (a SQuAD v1.1 or v2.0 JSON file)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_name = args.model
        if args.dropout >= 0:
            args.model = str(with_dropout(args.model, args.dropout, tmp / "model"))
        split = split_articles(data, args.train_articles, args.eval_articles, args.train_questions, tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # keep stdout to the one JSON line
            ours = {} if args.peer_only else run_backend(args, split["train"], split["dev"], tmp / "ours")
            peer = {} if args.no_peer else run_peer(args, split["train"], split["dev"], tmp / "peer")
            mismatches = window_mismatches(args, split["train"])
    line = {"bench": "train_qa", "backend": None if args.peer_only else args.backend, "model": model_name,
            "dropout": args.dropout if args.dropout >= 0 else None, "data": data.name,
            "train_articles": "{}-{}".format(*args.train_articles), "eval_articles": "{}-{}".format(*args.eval_articles),
            "train_questions": split["train_questions"], "eval_questions": split["eval_questions"],
            "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
            "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride, "seed": args.seed,
            "window_mismatches": mismatches, "overrides": args.overrides}
    per_question = ours.pop("per_question_f1", None)
    line.update(ours)
    if peer:
        peer_per_question = peer.pop("peer_per_question_f1")
        line.update({"peer": "hf-run_qa", **peer})
    if ours and peer:
        line.update({"speedup": ours["train_samples_per_s"] / peer["peer_train_samples_per_s"],
                     "f1_diff_ci95": paired_bootstrap(per_question, peer_per_question)})
    line["bench_wall_s"] = time.perf_counter() - started
    print(json.dumps({k: _round(v) for k, v in line.items()}))


def _round(value):
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


if __name__ == "__main__":
    main()
