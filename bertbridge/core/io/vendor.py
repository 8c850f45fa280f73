"""What bertbridge ships into SageMaker containers, for training jobs and endpoints alike.

bertbridge is not installed from an index inside the framework images: the job's
source folder (and an endpoint's ``model.tar.gz`` ``code/`` folder) carries the
package itself plus its distribution metadata, so backends register through their
``bertbridge.backends`` entry points there exactly as they do here. What the
framework image lacks is listed in a ``requirements.txt`` the containers install.

Example::

    >>> from bertbridge.core.plugins.registry import backends
    >>> print(requirements(backends().get("pytorch")))      # doctest: +SKIP
    numpy
    ...
    transformers>=4.57,<5
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

CORE_REQUIREMENTS = ("numpy", "tokenizers>=0.19", "pluggy>=1.3", "PyYAML>=6.0", "tqdm>=4.60", "safetensors>=0.4",
                     "google-crc32c>=1.5", "starlette>=0.37", "uvicorn>=0.30")
TRAINING_REQUIREMENTS = ("matplotlib>=3.7",)
"""What a training job needs beyond serving: the model folder's training_curves.png."""
TRACKING_REQUIREMENTS = {"tensorboard": ("tensorboardX>=2.6",), "mlflow": ("mlflow>=2.10",)}
"""Per ``tracking`` option a spec switches on, what the training job installs."""


def vendor_package(folder: Path) -> None:
    """Copy the bertbridge package and a minimal ``.dist-info`` (entry points) into ``folder``."""
    package = Path(list(importlib.util.find_spec("bertbridge").submodule_search_locations)[0])  # type: ignore[union-attr]
    shutil.copytree(package, folder / "bertbridge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = importlib.metadata.distribution("bertbridge")
    info = folder / f"bertbridge-{dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bertbridge\nVersion: {dist.version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(dist.read_text("entry_points.txt") or "", encoding="utf-8")


def requirements(backend, extra: tuple[str, ...] = ()) -> str:
    """``requirements.txt`` text: bertbridge's core needs, the backend's (on top of its framework image)
    and ``extra`` (a training job's: :data:`TRAINING_REQUIREMENTS` and its tracking packages)."""
    return "\n".join(CORE_REQUIREMENTS + tuple(backend.sagemaker_requirements) + tuple(extra)) + "\n"
