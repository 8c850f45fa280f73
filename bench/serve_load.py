#!/usr/bin/env python
"""Load test of ``bertbridge serve`` on loopback, with the Hugging Face ``pipeline`` as the peer.

Starts the server in a second process, drives it with C concurrent clients
(stdlib HTTP, one sentence per request) for N requests, then sends malformed
requests (bad JSON, wrong content type, empty text, huge body, non-UTF-8) that
must all get a 4xx while ``/ping`` keeps answering. The peer: ``pipeline
("text-classification")`` on the same model folder and sentences, in this
process, one sentence per call (p50) and in batches of 32 (throughput).

Prints one JSON line. Sentences: SST-2 dev (../shared/data/sst2) if present,
else examples/sentiment/dev.tsv.

    python bench/serve_load.py MODEL_DIR [--requests 2000] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import measure, sentences  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, float]:
    start = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    return status, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_server_load(model: str, texts: list[str], n: int, clients: int) -> dict:
    port = free_port()
    exe = Path(sys.executable).parent / "bertbridge"
    proc = subprocess.Popen([str(exe), "serve", model, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/ping", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
        for text in texts[:20]:  # warm up
            post(base + "/invocations", json.dumps(text).encode())
        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()
        per_client = n // clients

        def client(k: int) -> None:
            nonlocal failures
            for i in range(per_client):
                status, seconds = post(base + "/invocations", json.dumps(texts[(k * per_client + i) % len(texts)]).encode())
                with lock:
                    latencies.append(seconds)
                    failures += status != 200

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        malformed = [
            (b"{not json", "application/json"), (b'"x"', "application/xml"), (b'{"inputs": "   "}', "application/json"),
            (b"x" * (6 * 1024 * 1024), "application/json"), (b"\xff\xfe\x00bad", "application/json"),
        ]
        bad_statuses = [post(base + "/invocations", *malformed[i % len(malformed)])[0] for i in range(200)]
        ping_ok = urllib.request.urlopen(base + "/ping", timeout=5).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return {
        "requests": len(latencies), "clients": clients, "failures": failures,
        "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * pct(latencies, 0.99),
        "requests_per_s": len(latencies) / elapsed,
        "malformed": len(bad_statuses), "malformed_4xx": sum(400 <= s < 500 for s in bad_statuses),
        "ping_after_malformed": ping_ok,
    }


def run_pipeline(model: str, texts: list[str]) -> dict:
    os.environ.setdefault("USE_TF", "0")
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    clf = pipeline("text-classification", model=model, device=-1)
    p50, per_s = measure(clf, lambda batch: clf(batch, batch_size=32), texts)
    return {"peer": "hf-pipeline", "peer_p50_ms": p50, "peer_batch32_sentences_per_s": per_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a bertbridge model folder")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    texts = sentences()
    line = {"bench": "serve_load", "model": args.model, **run_server_load(args.model, texts, args.requests, args.clients)}
    line.update(run_pipeline(args.model, texts))
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
