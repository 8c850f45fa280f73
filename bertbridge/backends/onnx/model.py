"""onnxruntime implementation of the inference contract (imported only when used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from bertbridge.core.backend import EXPORT_OUTPUTS, Batch, InferenceModel, intra_op_threads
from bertbridge.core.errors import ArtifactError, NotSupportedError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxClassifier(InferenceModel):
    """An exported ``model.onnx``: ``logits`` (B, L) for a classifier; for question answering
    ``start_logits`` and ``end_logits`` (B, T), stacked into the contract's (B, T, 2)."""

    def __init__(self, path: Path, head: str = "sequence") -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = intra_op_threads()
        if threads:  # one batch at a time: all threads go to the operators, none to parallel branches
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = list(EXPORT_OUTPUTS[head])
        # the graph's inputs: ONNX drops one the model never reads (token_type_ids of DistilBERT)
        self.inputs = [i.name for i in self.session.get_inputs() if i.name in INPUTS]
        found = [o.name for o in self.session.get_outputs()]
        if not set(self.outputs) <= set(found):
            raise ArtifactError(f"{path}: outputs {found}, but a {head!r}-head model needs {self.outputs}. "
                                "The export does not belong to this model folder; export it again with bertbridge export.")

    def logits(self, batch: Batch) -> np.ndarray:
        out = self.session.run(self.outputs, {k: np.ascontiguousarray(batch[k], dtype=np.int64) for k in self.inputs})
        return out[0] if len(out) == 1 else np.stack(out, axis=-1)

    def save(self, directory: Path) -> None:
        raise NotSupportedError("an ONNX export is saved by bertbridge export; it cannot be re-saved as weights.")
