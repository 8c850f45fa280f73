"""onnxruntime implementation of the inference contract (imported only when used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from bertbridge.core.backend import Batch, InferenceModel
from bertbridge.core.errors import NotSupportedError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxClassifier(InferenceModel):
    def __init__(self, path: Path) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, batch: Batch) -> np.ndarray:
        return self.session.run(["logits"], {k: np.ascontiguousarray(batch[k], dtype=np.int64) for k in INPUTS})[0]

    def save(self, directory: Path) -> None:
        raise NotSupportedError("an ONNX export is saved by bertbridge export; it cannot be re-saved as weights.")
