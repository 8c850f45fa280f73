"""``bertbridge sagemaker train``: launch a spec as a SageMaker training job (SDK v3 ``ModelTrainer``).

The job runs the backend's script-mode entry point on the backend's framework
training image (``Backend.sagemaker_image``). Uploaded to
``s3://<bucket>/bertbridge/<job>/``: the data splits (channels ``train``,
``validation``, ``test``), the spec without data paths (channel ``spec``) and the
pretrained model folder (channel ``model``; nothing is downloaded in the job). The
source folder holds the entry point, the bertbridge package with its distribution
metadata (so backends register through their entry points in the container too) and a
``requirements.txt``. Metric definitions match the ``name=value`` log lines; spot
training comes with a checkpoint location so interrupted jobs resume. With
``debugger.attention`` in the spec the request carries a ``DebugHookConfig``: the
trial written in ``/opt/ml/output/tensors`` is uploaded to ``<prefix>/debug-output``
while the job runs, and the rules' verdicts are in the job's log and metrics.

SDK v2 users: build a ``sagemaker.pytorch.PyTorch`` (or ``TensorFlow``/``MXNet``)
estimator with ``entry_point`` = the backend's ``sagemaker_entry.py``, the same
channels and ``metric_definitions=METRIC_DEFINITIONS``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.io.vendor import TRACKING_REQUIREMENTS, TRAINING_REQUIREMENTS, requirements, vendor_package
from bertbridge.core.plugins.registry import backend_name, backends, models, tasks
from bertbridge.core.sagemaker.aws import aws_context, framework_image
from bertbridge.core.spec import TaskSpec

METRICS = ("train_loss", "learning_rate", "train_samples_per_s", "eval_loss", "eval_accuracy", "eval_macro_f1",
           "eval_micro_f1", "eval_mcc", "eval_subset_accuracy", "test_accuracy", "test_macro_f1",
           "eval_exact", "eval_f1", "eval_HasAns_f1", "eval_NoAns_f1", "test_exact", "test_f1")
METRIC_DEFINITIONS = [{"Name": name, "Regex": rf"^{name}=([-+0-9.eE]+|nan|inf)"} for name in METRICS]
DEBUG_LOCAL_PATH = "/opt/ml/output/tensors"
TENSORBOARD_LOCAL_PATH = "/opt/ml/output/tensorboard"  # the container's tracking.tensorboard (scriptmode)


@dataclass
class LaunchedJob:
    job_name: str
    image: str
    s3_prefix: str
    trainer: Any
    debug_output: Optional[str] = None


def _trainer_class(debug_hook: Any):
    """``ModelTrainer``, or a subclass adding ``DebugHookConfig`` to the CreateTrainingJob
    request: SDK v3 has no debugger setter, the service still takes the field."""
    from sagemaker.train import ModelTrainer

    if debug_hook is None:
        return ModelTrainer

    class DebuggedModelTrainer(ModelTrainer):
        def _create_training_job_args(self, *args, **kwargs):
            request = super()._create_training_job_args(*args, **kwargs)
            request["DebugHookConfig" if "AlgorithmSpecification" in request else "debug_hook_config"] = debug_hook
            return request

    return DebuggedModelTrainer


def _source_dir(folder: Path, backend, spec: Optional[TaskSpec] = None) -> None:
    """Entry point + bertbridge (package and dist-info, for entry points) + requirements (the training
    job's: the curves' matplotlib, and the packages of the tracking the spec switches on)."""
    vendor_package(folder)
    shutil.copyfile(backend.entry_point_path(), folder / backend.entry_point)
    tracking = [pkg for option, pkgs in TRACKING_REQUIREMENTS.items() if spec is not None and getattr(spec.tracking, option) for pkg in pkgs]
    (folder / "requirements.txt").write_text(requirements(backend, TRAINING_REQUIREMENTS + tuple(tracking)), encoding="utf-8")


def launch_training(
    spec_path,
    *,
    role: str,
    instance_type: str,
    instance_count: Optional[int] = None,
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
    """Upload data, spec, model and code, and start the training job.

    ``instance_count`` defaults to the spec's ``distribution.hosts``. A job of several
    processes (``instance_count`` > 1 or ``distribution.processes_per_host`` > 1) trains
    data-parallel: the backend's :meth:`~bertbridge.core.backend.Backend.sagemaker_distribution`
    (PyTorch: SageMaker's ``torchrun`` driver) or, where it has none, the entry point on each
    instance starts that instance's workers (``TF_CONFIG`` / ``DMLC_*`` built from ``SM_HOSTS``)."""
    from bertbridge.core.api import load_spec

    spec = load_spec(spec_path, overrides)
    with prepared_job(spec, role=role, instance_type=instance_type, instance_count=instance_count, backend=backend,
                      hyperparameters=overrides, bucket=bucket, region=region, spot=spot, max_run_seconds=max_run_seconds,
                      max_wait_seconds=max_wait_seconds, image=image, boto_session=boto_session) as job:
        job.trainer.train(input_data_config=job.inputs, wait=wait, logs=wait)
    return LaunchedJob(job.name, job.image, job.s3_prefix, job.trainer, job.debug_output)


@dataclass
class PreparedJob:
    """A training job ready to start: its ``trainer`` (a configured ``ModelTrainer``) and the
    uploaded channels as ``inputs`` (``InputData``). The source folder lives while the
    :func:`prepared_job` block runs."""

    name: str
    image: str
    s3_prefix: str
    trainer: Any
    inputs: list
    backend: Any
    debug_output: Optional[str] = None


@contextlib.contextmanager
def prepared_job(
    spec: TaskSpec,
    *,
    role: str,
    instance_type: str,
    instance_count: Optional[int] = None,
    backend: Optional[str] = None,
    hyperparameters: Sequence[str] = (),
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    spot: bool = False,
    max_run_seconds: int = 24 * 3600,
    max_wait_seconds: Optional[int] = None,
    image: Optional[str] = None,
    boto_session: Any = None,
    kind: str = "training",
) -> Iterator[PreparedJob]:
    """Check ``spec`` for a SageMaker job, upload its data, spec and model, and yield the job's
    ``ModelTrainer`` with the backend's image, the entry point, the metric definitions and
    ``hyperparameters`` (``key=value`` spec overrides) set, for a training or a tuning job to start."""
    chosen = backends().get(backend_name(backend, spec.backend))
    chosen.ensure_supports(spec.task.type, tasks().get(spec.task.type).head)
    if not chosen.trains:
        raise NotSupportedError(f"backend {chosen.name!r} only serves exported models; it cannot run a {kind} job.")
    if spec.data.train is None:
        raise SpecError("data.train is not set: the job needs training data.")
    if instance_count is None:
        instance_count = spec.distribution.hosts
    elif spec.distribution.hosts not in (1, instance_count):
        raise SpecError(f"instance_count is {instance_count} but the spec's distribution.hosts is {spec.distribution.hosts}; "
                        "give one of them (each instance is one host).")
    if instance_count < 1:
        raise SpecError(f"instance_count must be >= 1, got {instance_count}.")
    spec = spec.replace(distribution={**spec.to_dict()["distribution"], "hosts": instance_count})
    distributed = None
    if spec.distribution.world_size > 1:
        from bertbridge.core.distributed import data_parallel

        data_parallel.check(spec, chosen, "launcher")
        distributed = chosen.sagemaker_distribution(spec.distribution.processes_per_host)
    if spec.debugger.attention and not chosen.debugger:
        able = ", ".join(b.name for b in backends() if b.debugger) or "none installed"
        raise NotSupportedError(f"debugger.attention is set, but backend {chosen.name!r} has no SageMaker Debugger capture; "
                                f"backends with it: {able}.")
    aws = aws_context(boto_session, region, bucket)
    image = image or framework_image(chosen, "training", aws.region, instance_type)
    from sagemaker.core.shapes import DebugHookConfig

    try:
        import sagemaker.core.training.configs as configs
    except ImportError:  # SDK 3.0-3.x before the move
        import sagemaker.train.configs as configs

    job = f"bertbridge-{chosen.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    prefix = f"bertbridge/{job}"
    debug_output = f"s3://{aws.bucket}/{prefix}/debug-output" if spec.debugger.attention else None
    channels = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec_dict = spec.to_dict()
        for split in ("train", "validation", "test"):
            path = getattr(spec.data, split)
            spec_dict["data"][split] = None
            if path is not None:
                channels[split] = aws.upload(Path(path), f"{prefix}/data/{split}")
        spec_dict["training"]["checkpoint_dir"] = None
        spec_dict["debugger"]["out_dir"] = DEBUG_LOCAL_PATH if spec.debugger.attention else None
        (tmp / "spec").mkdir()
        (tmp / "spec" / "spec.json").write_text(json.dumps(spec_dict, indent=2), encoding="utf-8")
        channels["spec"] = aws.upload(tmp / "spec", f"{prefix}/spec")
        channels["model"] = aws.upload(models().resolve(spec.model.name), f"{prefix}/model")
        source = tmp / "source"
        source.mkdir()
        _source_dir(source, chosen, spec)
        static = {"backend": chosen.name}
        for item in hyperparameters:
            key, _, value = item.partition("=")
            static[key.strip()] = value
        debug_hook = DebugHookConfig(s3_output_path=debug_output, local_path=DEBUG_LOCAL_PATH) if debug_output else None
        trainer = _trainer_class(debug_hook)(
            training_image=image,
            source_code=configs.SourceCode(source_dir=str(source), entry_script=chosen.entry_point, requirements="requirements.txt"),
            compute=configs.Compute(instance_type=instance_type, instance_count=instance_count, enable_managed_spot_training=spot),
            hyperparameters=static,
            checkpoint_config=configs.CheckpointConfig(s3_uri=f"s3://{aws.bucket}/{prefix}/checkpoints", local_path="/opt/ml/checkpoints"),
            stopping_condition=configs.StoppingCondition(
                max_runtime_in_seconds=max_run_seconds,
                max_wait_time_in_seconds=(max_wait_seconds or 2 * max_run_seconds) if spot else None,
            ),
            output_data_config=configs.OutputDataConfig(s3_output_path=f"s3://{aws.bucket}/{prefix}/output"),
            role=role,
            sagemaker_session=aws.session,
            base_job_name=f"bertbridge-{chosen.name}",
            **({"distributed": distributed} if distributed is not None else {}),
        ).with_metric_definitions([configs.MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in METRIC_DEFINITIONS])
        if spec.tracking.tensorboard:  # SageMaker uploads the event files while the job runs
            trainer = trainer.with_tensorboard_output_config(configs.TensorBoardOutputConfig(
                s3_output_path=f"s3://{aws.bucket}/{prefix}/tensorboard", local_path=TENSORBOARD_LOCAL_PATH))
        inputs = [configs.InputData(channel_name=name, data_source=uri) for name, uri in channels.items()]
        yield PreparedJob(job, image, f"s3://{aws.bucket}/{prefix}", trainer, inputs, chosen, debug_output)
