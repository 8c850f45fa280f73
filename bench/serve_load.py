#!/usr/bin/env python
"""Load test of ``bertbridge serve`` on loopback, beside a server that wraps the Hugging Face ``pipeline``.

Starts ``bertbridge serve`` in a second process (on the model folder, or on an export of it made
here: ``--format onnx``, ``onnx-int8`` (optimized + dynamic int8, checked against the model on SST-2
dev), ``pt2``), drives it with C concurrent clients (stdlib HTTP, one sentence per request) for N
requests, then sends malformed requests (bad JSON, wrong content type, empty text, huge body,
non-UTF-8) that must all get a 4xx while ``/ping`` keeps answering. The peer: ``pipeline
("text-classification")`` on the same model folder behind the same Starlette ``/invocations``
(bench/_pipeline_server.py), driven the same way in the same run; plus the pipeline in-process,
one sentence per call (p50) and in batches of 32.

Prints one JSON line. Sentences: SST-2 dev (../shared/data/sst2) if present,
else examples/sentiment/dev.tsv.

    python bench/serve_load.py MODEL_DIR [--format onnx-int8] [--requests 2000] [--clients 4] [--workers 1]
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
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import SST2_DEV, measure, sentences  # noqa: E402

FORMATS = {"model": None, "onnx": ("onnx", {}), "onnx-int8": ("onnx", {"optimize": True, "quantize": "int8"}), "pt2": ("pt2", {})}


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


def bertbridge_server(model: str, workers: int) -> tuple[list[str], int]:
    port = free_port()
    exe = Path(sys.executable).parent / "bertbridge"
    return [str(exe), "serve", model, "--port", str(port), "--workers", str(workers)], port


def peer_server(model: str) -> tuple[list[str], int]:
    port = free_port()
    return [sys.executable, str(ROOT / "bench" / "_pipeline_server.py"), model, str(port)], port


def run_server_load(command: list[str], port: int, texts: list[str], n: int, clients: int) -> dict:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
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
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
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
    return {"inprocess_peer_p50_ms": p50, "inprocess_peer_batch32_sentences_per_s": per_s}


def served_folder(model: str, fmt: str, tmp: str) -> tuple[str, dict]:
    """The folder to serve: the model, or its export in ``fmt`` (with the export's accuracy check)."""
    if FORMATS[fmt] is None:
        return model, {}
    import bertbridge

    name, options = FORMATS[fmt]
    if options.get("quantize") and SST2_DEV.is_file():
        options = {**options, "validate": str(SST2_DEV)}
    written = bertbridge.export(model, name, Path(tmp) / fmt, **options)
    check = json.loads((written.parent / "bertbridge.json").read_text(encoding="utf-8"))["export"].get("validation", {})
    return str(written.parent), {f"export_{k}": check[k] for k in ("metric", "model", "export", "drop") if k in check}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a bertbridge model folder")
    p.add_argument("--format", default="model", choices=sorted(FORMATS), help="serve the model folder or an export made here")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--workers", type=int, default=1, help="bertbridge serve --workers")
    args = p.parse_args()
    texts = sentences()
    with tempfile.TemporaryDirectory() as tmp:
        folder, check = served_folder(args.model, args.format, tmp)
        line = {"bench": "serve_load", "model": args.model, "format": args.format, "workers": args.workers, **check,
                **run_server_load(*bertbridge_server(folder, args.workers), texts, args.requests, args.clients)}
    peer = run_server_load(*peer_server(args.model), texts, args.requests, args.clients)
    line.update({"peer": "hf-pipeline-starlette", **{f"peer_{k}": v for k, v in peer.items() if k not in ("clients",)}})
    line["requests_per_s_vs_peer"] = line["requests_per_s"] / line["peer_requests_per_s"]
    line.update(run_pipeline(args.model, texts))
    line["cpu_count"] = os.cpu_count()
    print(json.dumps({k: round(v, 4 if k.startswith("export_") else 2) if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
