"""``bertbridge sagemaker deploy``: serve a trained model on a SageMaker real-time endpoint.

The model is a bertbridge model folder (packed here into ``model.tar.gz`` in the
backend's serving layout, as ``run-local`` packs it), a ``model.tar.gz`` on disk, or
one already in S3 (e.g. a training job's ``output/model.tar.gz``; then say
``--backend``). It runs on the backend's framework *inference* image: PyTorch's
inference toolkit calls :mod:`bertbridge.core.serving.handlers` through ``code/inference.py``
(bertbridge itself travels in ``code/``), TensorFlow Serving serves the SavedModel
with the ``code/inference.py`` handlers. The model, endpoint config and endpoint are
created through the SageMaker control plane (the calls SDK v3's ``Model``/``Endpoint``
resources wrap; their describe-after-create trips over moto's answers, which the
tests use); the endpoint answers the same requests as ``bertbridge serve``.

Example::

    bertbridge sagemaker deploy runs/sst2 --role arn:aws:iam::123:role/SageMaker \\
        --instance-type ml.m5.xlarge --endpoint-name sst2

SDK v2 users: ``sagemaker.pytorch.PyTorchModel(model_data=..., entry_point="inference.py",
source_dir=<code/ of the tarball>, ...).deploy(...)`` does the same.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertbridge.core.errors import ArtifactError, SpecError
from bertbridge.core.io.archives import check_archive
from bertbridge.core.io.artifacts import MANIFEST_NAME, Manifest
from bertbridge.core.plugins.registry import backends
from bertbridge.core.sagemaker.aws import aws_context, framework_image


@dataclass
class Deployment:
    endpoint_name: str
    model_name: str
    image: str
    model_data: str
    backend: str


def _tarball_backend(path: Path) -> str:
    """The backend recorded in a model.tar.gz's manifest."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(MANIFEST_NAME) if MANIFEST_NAME in tar.getnames() else None
            if member is None:
                raise ArtifactError(f"{path}: no {MANIFEST_NAME} at the top of the archive; pack the model with "
                                    "'bertbridge run-local' or pass the model folder instead.")
            return str(json.loads(member.read().decode("utf-8"))["backend"])
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable model.tar.gz ({exc}). Pass the model folder instead.") from None


@dataclass
class SageMakerModel:
    """A model created in SageMaker (what an endpoint or a transform job runs)."""

    name: str
    image: str
    model_data: str
    backend: str
    client: Any  # the boto3 SageMaker client it was created with


def create_model(
    model,
    *,
    role: str,
    instance_type: str,
    name: Optional[str] = None,
    backend: Optional[str] = None,
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    image: Optional[str] = None,
    s3_folder: str = "endpoints",
    boto_session: Any = None,
) -> SageMakerModel:
    """Upload the model (unless it is in S3 already) and create a SageMaker model ``name`` (default:
    ``bertbridge-<backend>-<time>``) on the backend's inference image for ``instance_type``; a model
    folder or tarball goes to ``s3://<bucket>/bertbridge/<s3_folder>/<name>/model.tar.gz``."""
    from bertbridge.core.sagemaker.local import pack_model

    source = str(model)
    if source.startswith("s3://"):
        if not backend:
            raise SpecError(f"{source}: a model in S3 does not say which backend made it; pass --backend "
                            f"({', '.join(b.name for b in backends())}).")
        chosen_name = backend
    elif Path(source).is_dir():
        chosen_name = backend or Manifest.read(Path(source)).backend
    elif Path(source).is_file() and source.endswith((".tar.gz", ".tgz")):
        check_archive(Path(source))  # before any use or upload
        chosen_name = backend or _tarball_backend(Path(source))
    else:
        raise ArtifactError(f"{source}: not a model folder, a model.tar.gz or an s3:// URI. Pass the output_dir of a "
                            "training run, run-local's output/model.tar.gz, or a training job's model artifact in S3.")
    chosen = backends().get(chosen_name)
    aws = aws_context(boto_session, region, bucket)
    image = image or framework_image(chosen, "inference", aws.region, instance_type)
    name = name or f"bertbridge-{chosen.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        if source.startswith("s3://"):
            model_data = source
        else:
            tarball = Path(source) if Path(source).is_file() else pack_model(chosen, Path(source), Path(tmp) / "model.tar.gz")
            key = f"bertbridge/{s3_folder}/{name}/model.tar.gz"
            aws.boto_session.client("s3").upload_file(str(tarball), aws.bucket, key)
            model_data = f"s3://{aws.bucket}/{key}"
    variables = {**chosen.serving_environment(), "SAGEMAKER_REGION": aws.region}
    client = aws.boto_session.client("sagemaker")
    client.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={
        "Image": image, "ModelDataUrl": model_data, "Environment": variables})
    return SageMakerModel(name, image, model_data, chosen.name, client)


def deploy(
    model,
    *,
    role: str,
    instance_type: str,
    instance_count: int = 1,
    endpoint_name: Optional[str] = None,
    backend: Optional[str] = None,
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    image: Optional[str] = None,
    wait: bool = False,
    boto_session: Any = None,
) -> Deployment:
    """Upload the model (unless it is in S3 already) and create model, endpoint config and endpoint."""
    if instance_count < 1:
        raise SpecError(f"--instance-count must be at least 1, got {instance_count}.")
    created = create_model(model, name=endpoint_name, role=role, instance_type=instance_type, backend=backend, bucket=bucket,
                           region=region, image=image, boto_session=boto_session)
    name, client = created.name, created.client
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": instance_count,
        "InstanceType": instance_type, "InitialVariantWeight": 1.0}])
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        client.get_waiter("endpoint_in_service").wait(EndpointName=name)
    return Deployment(name, name, created.image, created.model_data, created.backend)
