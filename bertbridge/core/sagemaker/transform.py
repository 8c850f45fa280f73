"""``bertbridge sagemaker transform``: predict an S3 prefix of jsonl files offline with a SageMaker
batch transform job.

The model is created as ``bertbridge sagemaker deploy`` creates it (same image, same serving
functions), then a transform job reads every file under ``--input`` line by line
(``SplitType=Line``), sends as many lines per request as fit ``MaxPayloadInMB``
(``BatchStrategy=MultiRecord``, ``application/jsonlines`` in and out), and writes one output file
per input file under ``--output``, one line per input line (``AssembleWith=Line``). The input is
joined to the output (``JoinSource=Input``): each output line is its input object plus
``"SageMakerOutput"`` (the prediction), so an ``"id"`` in the input comes back with its answer.

Example::

    bertbridge sagemaker transform runs/sst2 --role arn:aws:iam::123:role/SageMaker \\
        --input s3://my-bucket/reviews/ --output s3://my-bucket/predictions/ --instance-type ml.m5.xlarge

Input lines are what ``/invocations`` takes as JSON lines: ``{"id": 7, "text": "..."}`` (and
``"text_pair"``), or ``{"question": ..., "context": ...}`` for question answering; keys other than
those are ignored by the model and kept by the join.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from bertbridge.core.errors import SpecError
from bertbridge.core.sagemaker.deploy import create_model
from bertbridge.core.serving.protocol import JSONLINES, MAX_INPUTS_ENV
from bertbridge.core.serving.server import ServerConfig

MAX_PAYLOAD_MB = ServerConfig().max_body_bytes // (1024 * 1024)
"""Requests are at most this large by default: the request-size limit of ``bertbridge serve`` (5 MB)."""

INVOCATION_TIMEOUT_S = 3600
"""How long one request may take (SageMaker's maximum): a full payload of short texts is tens of
thousands of records, minutes on a CPU instance."""


def container_environment(max_payload_mb: int) -> dict[str, str]:
    """The transform job's container variables: no count limit on a request's records (the payload
    size bounds them), the model servers' request and response size limits raised to fit a payload
    (an answer line can be longer than its input line) and their timeouts to the invocation timeout:
    TorchServe (PyTorch image), Multi Model Server (MXNet image), and gunicorn + nginx (TF Serving image)."""
    request_bytes = max_payload_mb * 1024 * 1024 + 65536
    response_bytes = 4 * request_bytes
    timeout = str(INVOCATION_TIMEOUT_S)
    return {
        MAX_INPUTS_ENV: "0",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": timeout,
        "TS_MAX_REQUEST_SIZE": str(request_bytes), "TS_MAX_RESPONSE_SIZE": str(response_bytes),
        "MMS_MAX_REQUEST_SIZE": str(request_bytes), "MMS_MAX_RESPONSE_SIZE": str(response_bytes),
        "SAGEMAKER_GUNICORN_TIMEOUT_SECONDS": timeout, "SAGEMAKER_NGINX_PROXY_READ_TIMEOUT_SECONDS": timeout,
    }


@dataclass
class TransformJob:
    job_name: str
    model_name: str
    image: str
    model_data: str
    backend: str
    output: str


def transform(
    model,
    *,
    input_uri: str,
    output_uri: str,
    role: str,
    instance_type: str,
    instance_count: int = 1,
    job_name: Optional[str] = None,
    backend: Optional[str] = None,
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    image: Optional[str] = None,
    max_payload_mb: int = MAX_PAYLOAD_MB,
    wait: bool = False,
    boto_session: Any = None,
) -> TransformJob:
    """Create the model and a batch transform job over ``input_uri`` (an S3 prefix or file of jsonl)."""
    for flag, uri in (("--input", input_uri), ("--output", output_uri)):
        if not str(uri).startswith("s3://"):
            raise SpecError(f"{flag} {uri!r}: a transform job reads and writes S3; give an s3://bucket/prefix URI.")
    if instance_count < 1:
        raise SpecError(f"--instance-count must be at least 1, got {instance_count}.")
    if not 1 <= max_payload_mb <= 100:
        raise SpecError(f"--max-payload-mb must be between 1 and 100 (SageMaker's range), got {max_payload_mb}.")
    created = create_model(model, name=job_name, role=role, instance_type=instance_type, backend=backend, bucket=bucket,
                           region=region, image=image, s3_folder="transforms", boto_session=boto_session)
    name = job_name or created.name
    created.client.create_transform_job(**transform_request(name, created.name, input_uri, output_uri, instance_type,
                                                            instance_count, max_payload_mb))
    if wait:
        _wait(created.client, name)
    return TransformJob(name, created.name, created.image, created.model_data, created.backend, output_uri)


def transform_request(job_name: str, model_name: str, input_uri: str, output_uri: str, instance_type: str,
                      instance_count: int, max_payload_mb: int) -> dict:
    """The CreateTransformJob request: jsonlines split on lines, several records per request,
    one output line per input line, each joined to its input; the limits of :func:`container_environment`
    are the job's, so an endpoint made from the same model keeps the real-time ones."""
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": max_payload_mb,
        "Environment": container_environment(max_payload_mb),
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_S, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": JSONLINES[0],
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": JSONLINES[0], "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
        "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"},
    }


def _wait(client, name: str, poll_s: float = 30.0) -> None:
    from bertbridge.core.errors import BertbridgeError

    while True:
        job = client.describe_transform_job(TransformJobName=name)
        status = job["TransformJobStatus"]
        if status == "Completed":
            return
        if status in ("Failed", "Stopped"):
            raise BertbridgeError(f"transform job {name} {status.lower()}: {job.get('FailureReason', 'no reason given')}. "
                                  "Its container logs are in CloudWatch under /aws/sagemaker/TransformJobs.")
        time.sleep(poll_s)
