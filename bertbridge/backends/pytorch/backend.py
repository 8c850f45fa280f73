"""PyTorch backend declaration; torch is imported only inside the methods."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from bertbridge.core.backend import Backend, InferenceModel, ModelSetup, TrainableModel


class PyTorchBackend(Backend):
    name = "pytorch"
    extra = "pytorch"
    requires = ("torch", "transformers")
    distributions = ("torch",)
    tasks = ("text_classification", "question_answering")
    heads = ("sequence", "span")
    architectures = ("bert", "distilbert", "roberta", "xlm-roberta")
    exports = ("pt2", "onnx", "torchscript")
    loads_exports = ("pt2",)
    sagemaker_image = {"framework": "pytorch", "version": "2.3", "py_version": "py311"}
    # The backend runs on transformers 4.57+ and 5.x, but transformers 5 needs torch>=2.6 (with an older
    # torch it imports with PyTorch disabled) and this image has torch 2.3: keep the job on 4.57.x
    # until the image moves to PyTorch 2.6+ (SageMaker's 2.6 images are py312).
    sagemaker_requirements = ("transformers>=4.57,<5",)
    distributed_engine = "DistributedDataParallel over gloo (NCCL on GPUs), launched with torchrun's environment"

    def install_note(self) -> str:
        return " (pip install torch==<version> first to choose a CPU or CUDA build)."

    def create_model(self, pretrained_dir: Path, setup: ModelSetup) -> TrainableModel:
        from .model import TorchClassifier

        self.check_architecture(pretrained_dir)
        return TorchClassifier.from_pretrained(pretrained_dir, setup)

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        from .model import TorchClassifier, use_threads

        use_threads()
        self.check_architecture(artifact_dir)
        return TorchClassifier.from_artifact(artifact_dir, setup)

    def launched_by_engine(self, environ: Mapping[str, str]) -> bool:
        from .launch import launched_by_torchrun

        return launched_by_torchrun(environ)

    def join_distributed(self, timeout: int):
        from .distributed import TorchCollective

        return TorchCollective(timeout)

    def process_plan(self, cluster):
        from .launch import process_plan

        return process_plan(cluster)

    def sagemaker_distribution(self, processes_per_host: int):
        """SageMaker's driver runs ``torchrun`` on every instance (``nnodes`` = instance count)."""
        from sagemaker.train.distributed import Torchrun

        return Torchrun(process_count_per_node=processes_per_host)

    def export(self, artifact_dir: Path, fmt: str, out_dir: Path, *, setup, **options) -> Path:
        """``pt2`` (torch.export), ``onnx`` (needs onnx + onnxruntime: pip install 'bertbridge[onnx]') or
        ``torchscript`` (deprecated)."""
        from .export import export

        return export(artifact_dir, fmt, out_dir, setup)

    def load_export(self, export_dir: Path, fmt: str, setup: ModelSetup) -> InferenceModel:
        """A ``model.pt2`` (checked for pickles first)."""
        from .export import FILES, ExportedProgramModel
        from .model import use_threads

        self.ensure_available()
        use_threads()
        return ExportedProgramModel(_export_file(export_dir, FILES[fmt], fmt))


def _export_file(export_dir: Path, name: str, fmt: str) -> Path:
    from bertbridge.core.errors import ArtifactError

    path = Path(export_dir) / name
    if not path.is_file():
        raise ArtifactError(f"{export_dir}: no {name}. Create it with: bertbridge export MODEL --format {fmt} --out {export_dir}")
    return path
