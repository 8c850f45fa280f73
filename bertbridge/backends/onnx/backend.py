"""ONNX Runtime backend declaration: loads the ``model.onnx`` of an export folder
(``bertbridge export MODEL --format onnx``) for prediction and serving. It cannot train."""

from __future__ import annotations

from pathlib import Path

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

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        path = Path(artifact_dir) / "model.onnx"
        if not path.is_file():
            raise ArtifactError(f"{artifact_dir}: no model.onnx. Create it with: bertbridge export {artifact_dir} --format onnx --out DIR")
        from .model import OnnxClassifier

        return OnnxClassifier(path, setup.head)
