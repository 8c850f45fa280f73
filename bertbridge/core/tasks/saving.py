"""Writing a predictor's model folder: what every task's ``save`` does."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Union

from bertbridge.core.io.artifacts import Manifest, atomic_directory, library_versions, now_iso, write_manifest, write_text_atomic
from bertbridge.core.plugins.registry import backends, models, tasks
from bertbridge.core.reports.check import cross_check
from bertbridge.core.reports.curves import CURVES_NAME, write_curves
from bertbridge.core.reports.model_card import CARD_NAME, CardFacts, plain_card, render_card
from bertbridge.core.reports.record import RECORD_NAME, RunRecord


def save_model_folder(predictor: Any, directory: Union[str, Path], metrics: Optional[dict[str, float]]) -> Path:
    """Write ``predictor``'s model, tokenizer, reports and manifest (with ``metrics``) atomically to
    ``directory``; updates its ``manifest`` and ``path``.

    The reports: ``README.md`` (a model card) always; ``training_history.json`` and
    ``training_curves.png`` when the predictor carries a run record (``predictor.run``, set by
    training and by :func:`bertbridge.load` from a folder that has one)."""
    manifest = replace(
        predictor.manifest,
        metrics=dict(metrics if metrics is not None else predictor.manifest.metrics),
        versions=library_versions(_framework_distributions(predictor.manifest.backend)),
        created=now_iso(),
        export={},  # weights saved from an export folder's model are a model folder again
    )
    record: Optional[RunRecord] = getattr(predictor, "run", None)
    target = Path(directory)
    with atomic_directory(target) as staging:
        predictor.model.save(staging)
        predictor.encoder.save(staging)
        check = _cross_check(staging, predictor, manifest, record)
        write_reports(staging, target.resolve().name, manifest, record, check)
        write_manifest(staging, manifest)
    predictor.manifest = manifest
    predictor.path = target.resolve()
    return predictor.path


def _cross_check(folder: Path, predictor: Any, manifest: Manifest, record: Optional[RunRecord]) -> Optional[dict[str, Any]]:
    """The backend's logits against the numpy reader of the staged files (best effort: a note when it cannot run).
    A model just trained with ``training.mixed_precision`` computes in bfloat16: a looser tolerance."""
    task = tasks().get(manifest.task)
    training = record.spec.get("training") if record is not None else None
    mixed = bool(isinstance(training, dict) and training.get("mixed_precision"))
    try:
        return cross_check(folder, predictor.model, predictor.encoder, task.head, task.probe_inputs(manifest),
                           manifest.max_seq_length, mixed_precision=mixed)
    except Exception as exc:  # noqa: BLE001 (an architecture the reader does not know, say)
        return {"passed": None, "note": f"not run: {type(exc).__name__}: {exc}"}


def write_reports(folder: Path, name: str, manifest: Manifest, record: Optional[RunRecord],
                  check: Optional[dict[str, Any]] = None) -> None:
    """The model card, and with a run record the record itself and its curves, into ``folder``.

    Best effort: the reports describe the model and must never cost it, so a record or a picture
    that cannot be written is left out with a warning, and the card falls back to a plain one."""
    if record is not None:
        try:
            write_text_atomic(folder / RECORD_NAME, record.to_json())
            write_curves(record, folder / CURVES_NAME, title=f"{manifest.task} on {manifest.backend}")
        except Exception as exc:  # noqa: BLE001 (anything matplotlib or odd numbers raise)
            _warn(f"{name}: the training record or curves could not be written ({type(exc).__name__}: {exc}); "
                  "the model is saved without them.")
            for leftover in (RECORD_NAME, CURVES_NAME):
                (folder / leftover).unlink(missing_ok=True)
            record = None
    try:
        card = render_card(name, manifest, record, card_facts(folder, manifest), check)
    except Exception as exc:  # noqa: BLE001
        _warn(f"{name}: the model card could not be rendered ({type(exc).__name__}: {exc}); a plain one is written.")
        card = plain_card(name, manifest)
    write_text_atomic(folder / CARD_NAME, card)


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def card_facts(folder: Path, manifest: Manifest) -> CardFacts:
    """What the card needs from the task, the registries and the saved ``config.json``."""
    task = tasks().get(manifest.task)
    able = [b.name for b in backends() if b.trains and b.supports(task.name, task.head)]
    return CardFacts(pipeline_tag=task.pipeline_tag, example_inputs=task.card_example(manifest), backends=able,
                     hub_base_model=models().hub_id(manifest.base_model) or None,
                     transformers_class=_architecture(folder / "config.json"))


def _architecture(config: Path) -> Optional[str]:
    try:
        names = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    return str(names[0]) if names else None


def _framework_distributions(backend_name: str) -> tuple[str, ...]:
    try:
        backend = backends().get(backend_name)
    except Exception:
        return ()
    return (*backend.distributions, "transformers", "safetensors")
