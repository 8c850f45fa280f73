"""Writing a predictor's model folder: what every task's ``save`` does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Union

from bertbridge.core.io.artifacts import atomic_directory, library_versions, now_iso, write_manifest
from bertbridge.core.plugins.registry import backends


def save_model_folder(predictor: Any, directory: Union[str, Path], metrics: Optional[dict[str, float]]) -> Path:
    """Write ``predictor``'s model, tokenizer and manifest (with ``metrics``) atomically to ``directory``;
    updates its ``manifest`` and ``path``."""
    manifest = replace(
        predictor.manifest,
        metrics=dict(metrics if metrics is not None else predictor.manifest.metrics),
        versions=library_versions(_framework_distributions(predictor.manifest.backend)),
        created=now_iso(),
        export={},  # weights saved from an export folder's model are a model folder again
    )
    with atomic_directory(Path(directory)) as staging:
        predictor.model.save(staging)
        predictor.encoder.save(staging)
        write_manifest(staging, manifest)
    predictor.manifest = manifest
    predictor.path = Path(directory).resolve()
    return predictor.path


def _framework_distributions(backend_name: str) -> tuple[str, ...]:
    try:
        backend = backends().get(backend_name)
    except Exception:
        return ()
    return (*backend.distributions, "transformers", "safetensors")
