"""MXNet (GluonNLP) backend declaration; MXNet is imported only inside the methods.

MXNet 1.9 needs numpy<2, and SageMaker Debugger (``smdebug``) needs
protobuf<=3.20.3, which TensorFlow 2.21 cannot live with; so this backend has
its own virtual environment (``make mxnet-env``). From any other environment,
set ``BERTBRIDGE_MXNET_PYTHON`` to that environment's interpreter and the CLI
forwards MXNet commands there (see :mod:`bertbridge.core.forwarding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from bertbridge.core.backend import Backend, InferenceModel, ModelSetup, TrainableModel


class MXNetBackend(Backend):
    name = "mxnet"
    extra = "mxnet"
    requires = ("mxnet", "gluonnlp")
    distributions = ("mxnet", "mxnet-mkl")
    tasks = ("text_classification", "question_answering")
    heads = ("sequence", "span")
    architectures = ("bert", "distilbert", "roberta", "xlm-roberta")
    exports = ("mxnet-symbol",)
    debugger = True
    sagemaker_image = {}  # SageMaker's newest MXNet images (1.9) have Python 3.8
    sagemaker_image_note = (
        "SageMaker's newest MXNet images (mxnet-training/mxnet-inference 1.9) ship Python 3.8 and bertbridge needs "
        "3.10 or later. Build docker/mxnet/Dockerfile (MXNet 1.9.1 + GluonNLP on Python 3.11; it trains under "
        "ModelTrainer and answers SageMaker's 'serve') and push it to ECR."
    )
    sagemaker_requirements = ("gluonnlp==0.10.0",)
    distributed_engine = "the dist_sync kvstore (DMLC parameter server)"

    def install_note(self) -> str:
        return (
            "MXNet 1.9 needs numpy<2 and SageMaker Debugger protobuf<=3.20.3, which TensorFlow 2.21 cannot share, "
            "so it gets its own environment: run `make mxnet-env` (creates .venv-mxnet; or pip install "
            "'numpy==1.26.4' 'bertbridge[mxnet,debugger]' in a new virtual environment), then either use "
            ".venv-mxnet/bin/bertbridge, or set BERTBRIDGE_MXNET_PYTHON=.venv-mxnet/bin/python and this "
            "environment's bertbridge command forwards mxnet commands there."
        )

    def create_model(self, pretrained_dir: Path, setup: ModelSetup) -> TrainableModel:
        from .model import MXClassifier

        self.check_architecture(pretrained_dir)
        return MXClassifier.from_pretrained(pretrained_dir, setup)

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        from .model import MXClassifier

        self.check_architecture(artifact_dir)
        return MXClassifier.from_artifact(artifact_dir, setup)

    def launched_by_engine(self, environ: Mapping[str, str]) -> bool:
        from .launch import launched_by_dmlc

        return launched_by_dmlc(environ)

    def join_distributed(self, timeout: int):
        from .distributed import MXCollective

        return MXCollective(timeout)

    def process_plan(self, cluster):
        """A scheduler (first host), a parameter server per host and the workers; see :mod:`.launch`."""
        from .launch import process_plan

        return process_plan(cluster)

    def debug_session(self, model, config, probe, out_dir: Path):
        from .debugger import SmdebugSession

        return SmdebugSession(model, config, probe, out_dir)

    def export(self, artifact_dir: Path, fmt: str, out_dir: Path, *, setup, **options) -> Path:
        from .export import export_symbol

        return export_symbol(artifact_dir, out_dir, setup)
