"""TensorFlow backend declaration; TensorFlow is imported only inside the methods.

The model is BERT written in plain TensorFlow (``bert.py``) rather than
transformers' TF classes: those are gone in transformers 5, and importing
them pulls torch and TensorFlow into each other's processes. Weights keep
PyTorch names and layout, so artifacts are shared with every backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from bertbridge.core.backend import Backend, InferenceModel, ModelSetup, TrainableModel


class TensorFlowBackend(Backend):
    name = "tensorflow"
    extra = "tensorflow"
    requires = ("tensorflow",)
    distributions = ("tensorflow", "tensorflow-cpu")
    tasks = ("text_classification", "question_answering")
    heads = ("sequence", "span")
    architectures = ("bert", "distilbert", "roberta", "xlm-roberta")
    exports = ("savedmodel",)
    sagemaker_image = {"framework": "tensorflow", "version": "2.16", "py_version": "py310"}
    distributed_engine = "MultiWorkerMirroredStrategy (collective all-reduce over gRPC), configured by TF_CONFIG"

    def create_model(self, pretrained_dir: Path, setup: ModelSetup) -> TrainableModel:
        from .model import TFClassifier

        self.check_architecture(pretrained_dir)
        return TFClassifier.from_pretrained(pretrained_dir, setup)

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        from .model import TFClassifier

        self.check_architecture(artifact_dir)
        return TFClassifier.from_artifact(artifact_dir, setup)

    # -- data-parallel training (sagemaker_distribution stays None: the entry point starts
    # each instance's workers from SM_HOSTS with process_plan's TF_CONFIGs) -----------------
    def launched_by_engine(self, environ: Mapping[str, str]) -> bool:
        from .launch import launched_by_tf_config

        return launched_by_tf_config(environ)

    def join_distributed(self, timeout: int):
        from .distributed import TFCollective

        return TFCollective(timeout)

    def process_plan(self, cluster):
        from .launch import process_plan

        return process_plan(cluster)

    def package_for_serving(self, artifact_dir: Path, out_dir: Path) -> None:
        """TF Serving layout (``1/`` SavedModel + ``code/`` handlers), plus the model folder's
        files at the root so ``bertbridge serve`` answers from the same tarball. Models of tasks the
        export formats do not serve (a third party's, unless it says so) get the model folder only
        (served by ``bertbridge serve``)."""
        from bertbridge.core.io.artifacts import Manifest, copy_files
        from bertbridge.core.plugins.registry import tasks

        copy_files(artifact_dir, out_dir)
        manifest = Manifest.read(artifact_dir)
        task = tasks().get(manifest.task)
        if task.exportable:
            self.export(artifact_dir, "savedmodel", out_dir, setup=task.model_setup(manifest), version=1)

    def serving_environment(self) -> dict[str, str]:
        """TensorFlow Serving finds ``1/`` and the ``code/inference.py`` handlers by itself."""
        return {}

    def export(self, artifact_dir: Path, fmt: str, out_dir: Path, *, setup, **options) -> Path:
        from .export import export_savedmodel

        return export_savedmodel(artifact_dir, out_dir, setup, version=int(options.get("version", 1)))
