#!/usr/bin/env python
"""Inference speed and accuracy of a trained model per format, beside the Hugging Face ``pipeline``.

For the model (``bertbridge.load``, PyTorch), its ``pt2`` (torch.export), ONNX and optimized +
dynamic-int8 ONNX exports, each through ``bertbridge.load`` (tokenization included), and
``pipeline("text-classification")`` on the same model folder and sentences in the same process: the
p50 latency of one sentence per call and sentences/s at batch 32; SST-2 dev accuracy of the model
and of the int8 export (the export's own accuracy check). Sentences: SST-2 dev
(../shared/data/sst2) if present, else examples/sentiment/dev.tsv. Prints one JSON line.
(TorchScript, deprecated, is no longer measured.)

    python bench/inference_formats.py MODEL_DIR
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("BERTBRIDGE_PROGRESS", "0")

from _common import SST2_DEV, measure, sentences  # noqa: E402


def main() -> None:
    import bertbridge

    model_dir = sys.argv[1]
    texts = sentences()
    line: dict = {"bench": "inference_formats", "model": model_dir, "sentences": len(texts), "cpu_count": os.cpu_count()}
    clf = bertbridge.load(model_dir)
    line["pytorch_p50_ms"], line["pytorch_batch32_per_s"] = measure(lambda t: clf.predict([t]), clf.predict, texts)
    with tempfile.TemporaryDirectory() as tmp:
        exports = {
            "pt2": bertbridge.export(model_dir, "pt2", Path(tmp) / "pt2"),
            "onnx": bertbridge.export(model_dir, "onnx", Path(tmp) / "onnx"),
            "onnx_int8": bertbridge.export(model_dir, "onnx", Path(tmp) / "int8", optimize=True, quantize="int8",
                                           **({"validate": str(SST2_DEV)} if SST2_DEV.is_file() else {})),
        }
        for name, path in exports.items():
            served = bertbridge.load(path.parent)
            line[f"{name}_backend"] = served.backend
            line[f"{name}_p50_ms"], line[f"{name}_batch32_per_s"] = measure(lambda t: served.predict([t]), served.predict, texts)
        check = served.manifest.export["validation"]
        line["dev_accuracy"], line["onnx_int8_dev_accuracy"] = check["model"], check["export"]
        line["onnx_int8_accuracy_drop_points"], line["validation_data"] = check["drop"], check["data"]
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    pipe = pipeline("text-classification", model=model_dir, device=-1)
    line["peer"] = "hf-pipeline"
    line["peer_p50_ms"], line["peer_batch32_per_s"] = measure(pipe, lambda b: pipe(b, batch_size=32), texts)
    line["onnx_int8_batch32_vs_peer"] = line["onnx_int8_batch32_per_s"] / line["peer_batch32_per_s"]
    line["onnx_int8_p50_vs_peer"] = line["onnx_int8_p50_ms"] / line["peer_p50_ms"]
    print(json.dumps({k: round(v, 4 if "accuracy" in k else 2) if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    main()
