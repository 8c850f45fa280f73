"""ONNX Runtime backend declaration: loads the ``model.onnx`` of an export folder
(``bertbridge export MODEL --format onnx``) for prediction and serving. It cannot train."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from bertbridge.core.backend import Backend, InferenceModel, ModelSetup
from bertbridge.core.errors import ArtifactError


class OnnxBackend(Backend):
    name = "onnx"
    extra = "onnx"
    requires = ("onnxruntime",)
    distributions = ("onnxruntime", "onnxruntime-gpu")
    tasks = ("text_classification", "question_answering")
    heads = ("sequence", "span")
    trains = False
    loads_exports = ("onnx",)
    quantizes = {"onnx": ("int8",)}

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        path = Path(artifact_dir) / "model.onnx"
        if not path.is_file():
            raise ArtifactError(f"{artifact_dir}: no model.onnx. Create it with: bertbridge export {artifact_dir} --format onnx --out DIR")
        from .model import OnnxClassifier

        return OnnxClassifier(path, setup.head)

    def load_export(self, export_dir: Path, fmt: str, setup: ModelSetup) -> InferenceModel:
        self.ensure_available()
        return self.load_model(export_dir, setup)

    def refine_export(self, export_dir: Path, fmt: str, *, optimize: bool, quantize: Optional[str]) -> dict[str, Any]:
        """ONNX Runtime's transformer fusions (``optimize``) and dynamic int8 quantization; see :mod:`.refine`."""
        self.ensure_available()
        from .refine import refine

        return refine(export_dir, optimize=optimize, quantize=quantize)
