"""``bertbridge sagemaker train``: launch a spec as a SageMaker training job (SDK v3 ``ModelTrainer``).

The job runs the backend's script-mode entry point on the backend's framework
training image (``Backend.sagemaker_image``). Uploaded to
``s3://<bucket>/bertbridge/<job>/``: the data splits (channels ``train``,
``validation``, ``test``), the spec without data paths (channel ``spec``) and the
pretrained model folder (channel ``model``; nothing is downloaded in the job). The
source folder holds the entry point, the bertbridge package with its distribution
metadata (so backends register through their entry points in the container too) and a
``requirements.txt``. Metric definitions match the ``name=value`` log lines; spot
training comes with a checkpoint location so interrupted jobs resume.

SDK v2 users: build a ``sagemaker.pytorch.PyTorch`` (or ``TensorFlow``/``MXNet``)
estimator with ``entry_point`` = the backend's ``sagemaker_entry.py``, the same
channels and ``metric_definitions=METRIC_DEFINITIONS``.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import BackendUnavailableError, NotSupportedError, SpecError
from .registry import backend_name, backends, models

METRICS = ("train_loss", "learning_rate", "train_samples_per_s", "eval_loss", "eval_accuracy", "eval_macro_f1",
           "eval_micro_f1", "eval_mcc", "eval_subset_accuracy", "test_accuracy", "test_macro_f1")
METRIC_DEFINITIONS = [{"Name": name, "Regex": rf"^{name}=([-+0-9.eE]+|nan|inf)"} for name in METRICS]
CORE_REQUIREMENTS = ("numpy", "tokenizers>=0.19", "pluggy>=1.3", "PyYAML>=6.0", "tqdm>=4.60", "safetensors>=0.4", "google-crc32c>=1.5")


@dataclass
class LaunchedJob:
    job_name: str
    image: str
    s3_prefix: str
    trainer: Any


def _sdk():
    try:
        from sagemaker.train import ModelTrainer  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "bertbridge sagemaker needs the SageMaker Python SDK v3: pip install 'bertbridge[sagemaker]'"
        ) from None
    try:
        import sagemaker.core.training.configs as configs
    except ImportError:  # SDK 3.0-3.x before the move
        import sagemaker.train.configs as configs
    from sagemaker.core import image_uris
    from sagemaker.train import ModelTrainer

    return ModelTrainer, configs, image_uris


def _upload(s3, bucket: str, prefix: str, path: Path) -> str:
    """Upload a file or a folder's files; returns the S3 URI of the channel."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for item in files:
        s3.upload_file(str(item), bucket, f"{prefix}/{item.name}")
    return f"s3://{bucket}/{prefix}"


def _source_dir(folder: Path, backend) -> None:
    """Entry point + bertbridge (package and dist-info, for entry points) + requirements."""
    package = Path(__file__).resolve().parent.parent
    shutil.copytree(package, folder / "bertbridge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = importlib.metadata.distribution("bertbridge")
    info = folder / f"bertbridge-{dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bertbridge\nVersion: {dist.version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(dist.read_text("entry_points.txt") or "", encoding="utf-8")
    shutil.copyfile(backend.entry_point_path(), folder / backend.entry_point)
    (folder / "requirements.txt").write_text("\n".join(CORE_REQUIREMENTS + tuple(backend.sagemaker_requirements)) + "\n", encoding="utf-8")


def launch_training(
    spec_path,
    *,
    role: str,
    instance_type: str,
    instance_count: int = 1,
    backend: Optional[str] = None,
    overrides: Sequence[str] = (),
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    spot: bool = False,
    max_run_seconds: int = 24 * 3600,
    max_wait_seconds: Optional[int] = None,
    image: Optional[str] = None,
    wait: bool = False,
    boto_session: Any = None,
) -> LaunchedJob:
    """Upload data, spec, model and code, and start the training job."""
    from .api import load_spec

    ModelTrainer, configs, image_uris = _sdk()
    spec = load_spec(spec_path, overrides)
    chosen = backends().get(backend_name(backend, spec.backend))
    chosen.ensure_supports(spec.task.type)
    if not chosen.trains or not chosen.sagemaker_image:
        raise NotSupportedError(f"backend {chosen.name!r} has no SageMaker training image; use pytorch or tensorflow.")
    if spec.data.train is None:
        raise SpecError("data.train is not set: the job needs training data.")
    if instance_count != 1:
        raise NotSupportedError("instance_count > 1 needs distributed training, which is not implemented yet; use 1.")
    import boto3

    from sagemaker.core.helper.session_helper import Session

    boto_session = boto_session or boto3.Session(region_name=region)
    session = Session(boto_session=boto_session)
    bucket = bucket or session.default_bucket()
    job = f"bertbridge-{chosen.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    prefix = f"bertbridge/{job}"
    s3 = boto_session.client("s3")
    channels = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec_dict = spec.to_dict()
        for split in ("train", "validation", "test"):
            path = getattr(spec.data, split)
            spec_dict["data"][split] = None
            if path is not None:
                channels[split] = _upload(s3, bucket, f"{prefix}/data/{split}", Path(path))
        spec_dict["training"]["checkpoint_dir"] = None
        (tmp / "spec").mkdir()
        (tmp / "spec" / "spec.json").write_text(json.dumps(spec_dict, indent=2), encoding="utf-8")
        channels["spec"] = _upload(s3, bucket, f"{prefix}/spec", tmp / "spec")
        channels["model"] = _upload(s3, bucket, f"{prefix}/model", models().resolve(spec.model.name))
        source = tmp / "source"
        source.mkdir()
        _source_dir(source, chosen)
        image = image or image_uris.retrieve(
            region=boto_session.region_name, instance_type=instance_type, image_scope="training", **chosen.sagemaker_image
        )
        hyperparameters = {"backend": chosen.name}
        for item in overrides:
            key, _, value = item.partition("=")
            hyperparameters[key.strip()] = value
        trainer = ModelTrainer(
            training_image=image,
            source_code=configs.SourceCode(source_dir=str(source), entry_script=chosen.entry_point, requirements="requirements.txt"),
            compute=configs.Compute(instance_type=instance_type, instance_count=instance_count, enable_managed_spot_training=spot),
            hyperparameters=hyperparameters,
            checkpoint_config=configs.CheckpointConfig(s3_uri=f"s3://{bucket}/{prefix}/checkpoints", local_path="/opt/ml/checkpoints"),
            stopping_condition=configs.StoppingCondition(
                max_runtime_in_seconds=max_run_seconds,
                max_wait_time_in_seconds=(max_wait_seconds or 2 * max_run_seconds) if spot else None,
            ),
            output_data_config=configs.OutputDataConfig(s3_output_path=f"s3://{bucket}/{prefix}/output"),
            role=role,
            sagemaker_session=session,
            base_job_name=f"bertbridge-{chosen.name}",
        ).with_metric_definitions([configs.MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in METRIC_DEFINITIONS])
        trainer.train(
            input_data_config=[configs.InputData(channel_name=name, data_source=uri) for name, uri in channels.items()],
            wait=wait, logs=wait,
        )
    return LaunchedJob(job, image, f"s3://{bucket}/{prefix}", trainer)
