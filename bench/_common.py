"""Shared by the benchmarks: the sentences they run on and the latency/throughput measurement."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SST2_DEV = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"


def sentences() -> list[str]:
    """SST-2 dev sentences (../shared/data/sst2) if present, else the example's dev set."""
    path = SST2_DEV if SST2_DEV.is_file() else ROOT / "examples" / "sentiment" / "dev.tsv"
    return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]


def measure(predict_one, predict_batch, texts: list[str], batch_size: int = 32) -> tuple[float, float]:
    """(p50 ms of one sentence per call, sentences/s in batches), after a warm-up."""
    for text in texts[:20]:
        predict_one(text)
    singles = []
    for text in texts[:200]:
        start = time.perf_counter()
        predict_one(text)
        singles.append(time.perf_counter() - start)
    batch = texts[:640]
    start = time.perf_counter()
    for i in range(0, len(batch), batch_size):
        predict_batch(batch[i : i + batch_size])
    return 1000 * statistics.median(singles), len(batch) / (time.perf_counter() - start)


def trainer_warmup(ratio: float) -> dict:
    """``TrainingArguments`` keywords for a warmup over ``ratio`` of the steps: transformers 5
    folded ``warmup_ratio`` into ``warmup_steps`` (a float below 1 is a ratio there)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"warmup_ratio": ratio} if "warmup_ratio" in names else {"warmup_steps": ratio}
