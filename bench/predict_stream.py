#!/usr/bin/env python
"""Peak memory of ``bertbridge predict --input`` on a 10,000-line and a 1,000,000-line jsonl file:
streaming keeps it flat (issue 17). Each size runs in its own process, measured with ``os.wait4``
(peak RSS of that process), and the 1M output is checked to hold one row per input line in order.

The model is the tiny random BERT of ``bertbridge.testing.tiny`` (2 layers, hidden 32), fine-tuned on the
toy sentences, so that a million rows take minutes on 2 cores: what is measured is the reading, batching
and writing around the model, which is the same for any model (MiniLM adds its fixed ~100 MB of weights and
about 300 rows/s). Input lines are SST-2 dev sentences (``../shared/data/sst2``, else the example's), repeated.

Prints one JSON line::

    {"bench": "predict_stream", "small_lines": 10000, "small_peak_rss_mb": ..., "large_lines": 1000000,
     "large_peak_rss_mb": ..., "rss_ratio": ..., "large_rows_per_s": ..., "rows_ok": true}

    python bench/predict_stream.py [--large 1000000] [--small 10000]
"""

from __future__ import annotations

import argparse
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
from _common import sentences  # noqa: E402


def write_input(path: Path, lines: int, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            fh.write(json.dumps({"text": texts[i % len(texts)]}) + "\n")
    return path


def tiny_model(folder: Path) -> Path:
    import bertbridge
    from bertbridge.testing import tiny

    (folder / "data").mkdir(parents=True)
    data = tiny.toy_data(folder / "data")
    spec = tiny.tiny_spec(tiny.write_random_bert(folder / "base"), data, folder / "model", epochs=2)
    return bertbridge.train(spec, backend="pytorch").path


def run_predict(model: Path, source: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one ``bertbridge predict --input`` process."""
    argv = [sys.executable, "-m", "bertbridge", "predict", str(model), "--input", str(source), "--output", str(out)]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full pipe
        start = time.perf_counter()
        job = subprocess.Popen(argv, env={**os.environ, "BERTBRIDGE_PROGRESS": "0"}, stderr=err)
        _, status, usage = os.wait4(job.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"bertbridge predict failed: {err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def rows_in_order(path: Path, lines: int) -> bool:
    """Whether the output holds rows for input lines 1..lines, each once, in order."""
    seen = 0
    with path.open(encoding="utf-8") as fh:
        for seen, row in enumerate(fh, start=1):
            if json.loads(row)["line"] != seen:
                return False
    return seen == lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", type=int, default=10_000)
    p.add_argument("--large", type=int, default=1_000_000)
    args = p.parse_args()
    texts = sentences()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # keep stdout to the one JSON line
            model = tiny_model(tmp / "tiny")
        line = {"bench": "predict_stream", "model": "tiny random BERT (2 layers, hidden 32)"}
        for name, lines in (("small", args.small), ("large", args.large)):
            source = write_input(tmp / f"{name}.jsonl", lines, texts)
            rss, seconds = run_predict(model, source, tmp / f"{name}-out.jsonl")
            line.update({f"{name}_lines": lines, f"{name}_input_mb": round(source.stat().st_size / 2**20, 1),
                         f"{name}_peak_rss_mb": round(rss, 1), f"{name}_seconds": round(seconds, 1),
                         f"{name}_rows_per_s": round(lines / seconds, 1)})
        line["rss_ratio"] = round(line["large_peak_rss_mb"] / line["small_peak_rss_mb"], 3)
        line["rows_ok"] = rows_in_order(tmp / "large-out.jsonl", args.large)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
