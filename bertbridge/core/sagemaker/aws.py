"""The AWS side shared by ``bertbridge sagemaker train`` and ``deploy``: the SDK v3
import check, sessions, the default bucket, uploads and framework image lookup.

Nothing here runs at import time; the SDK and boto3 are imported by the functions.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertbridge.core.errors import BackendUnavailableError, BertbridgeError, NotSupportedError

INSTALL = "pip install 'bertbridge[sagemaker]'"


def require_sdk() -> None:
    """Raise a clear error unless the SageMaker Python SDK v3 is importable."""
    try:
        import sagemaker.core  # noqa: F401
        import sagemaker.train  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(f"bertbridge sagemaker needs the SageMaker Python SDK v3: {INSTALL}") from None


@dataclass
class AwsContext:
    boto_session: Any
    session: Any  # sagemaker.core.helper.session_helper.Session
    bucket: str

    @property
    def region(self) -> str:
        return self.boto_session.region_name

    def upload(self, path: Path, prefix: str) -> str:
        """Upload a file or a folder's files under ``prefix``; returns ``s3://bucket/prefix``
        (a channel's URI)."""
        s3 = self.boto_session.client("s3")
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        for item in files:
            s3.upload_file(str(item), self.bucket, f"{prefix}/{item.name}")
        return f"s3://{self.bucket}/{prefix}"


def aws_context(boto_session: Any = None, region: Optional[str] = None, bucket: Optional[str] = None) -> AwsContext:
    require_sdk()
    import boto3
    from sagemaker.core.helper.session_helper import Session

    boto_session = boto_session or boto3.Session(region_name=region)
    session = Session(boto_session=boto_session, default_bucket=bucket)  # the SDK's own uploads go to --bucket too
    return AwsContext(boto_session, session, bucket or session.default_bucket())


def framework_image(backend, scope: str, region: str, instance_type: str) -> str:
    """The backend's SageMaker framework image (``scope``: training or inference).

    Backends whose newest SageMaker image cannot run bertbridge (MXNet 1.9: Python 3.8)
    declare ``sagemaker_image_note`` instead; then ``--image`` is required.
    """
    if not backend.sagemaker_image:
        note = getattr(backend, "sagemaker_image_note", "") or f"backend {backend.name!r} has no SageMaker framework image."
        raise NotSupportedError(f"{note} Then pass --image with its URI (any image with Python >= 3.10, bash and the "
                                f"backend's framework installed works).")
    from sagemaker.core import image_uris

    return image_uris.retrieve(region=region, instance_type=instance_type, image_scope=scope, **backend.sagemaker_image)


class AwsError(BertbridgeError):
    """AWS refused a call (credentials, region, permissions, limits, invalid values)."""


@contextmanager
def aws_errors():
    """Turn botocore's errors into one-paragraph bertbridge errors that say what to fix."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"SageMaker refused {exc.operation_name}: {error.get('Code', '')}: {error.get('Message', exc)}. "
                       "Fix the value it names (role ARN, instance type, quota, names) and run again.") from None
    except NoCredentialsError:
        raise AwsError("no AWS credentials: run 'aws configure' (or 'aws sso login'), or set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY.") from None
    except NoRegionError:
        raise AwsError("no AWS region: pass --region, or set AWS_DEFAULT_REGION.") from None
