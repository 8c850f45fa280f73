#!/usr/bin/env python
"""Inference speed of a trained model per format, beside the Hugging Face ``pipeline``.

For PyTorch (``bertbridge.load``), TorchScript and ONNX Runtime exports, and
``pipeline("text-classification")`` on the same model folder and sentences: the p50
latency of one sentence per call (tokenization included) and sentences/s at batch 32.
Sentences: SST-2 dev (../shared/data/sst2) if present, else examples/sentiment/dev.tsv.
Prints one JSON line.

    python bench/inference_formats.py MODEL_DIR
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")

from _common import measure, sentences  # noqa: E402


def main() -> None:
    import bertbridge
    from bertbridge.backends.pytorch.export import run_export
    from bertbridge.core.text.batching import collate

    model_dir = sys.argv[1]
    texts = sentences()
    line: dict = {"bench": "inference_formats", "model": model_dir, "sentences": len(texts)}
    clf = bertbridge.load(model_dir)
    line["pytorch_p50_ms"], line["pytorch_batch32_per_s"] = measure(lambda t: clf.predict([t]), clf.predict, texts)
    with tempfile.TemporaryDirectory() as tmp:
        ts_run = run_export("torchscript", bertbridge.export(model_dir, "torchscript", Path(tmp) / "ts"))

        def ts_predict(batch):
            feats = clf.encode(batch)
            return ts_run(collate(feats, np.arange(len(batch))))

        line["torchscript_p50_ms"], line["torchscript_batch32_per_s"] = measure(lambda t: ts_predict([t]), ts_predict, texts)
        onnx = bertbridge.load(bertbridge.export(model_dir, "onnx", Path(tmp) / "onnx").parent, backend="onnx")
        line["onnx_p50_ms"], line["onnx_batch32_per_s"] = measure(lambda t: onnx.predict([t]), onnx.predict, texts)
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    pipe = pipeline("text-classification", model=model_dir, device=-1)
    line["peer"] = "hf-pipeline"
    line["peer_p50_ms"], line["peer_batch32_per_s"] = measure(pipe, lambda b: pipe(b, batch_size=32), texts)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
