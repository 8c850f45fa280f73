"""``README.md``: a Hugging Face model card for a saved model folder.

YAML front matter in the Hub's model-card format (``library_name``, ``pipeline_tag``, ``tags``,
``metrics``, ``base_model`` when it is a Hub id), then what a reader needs: the labels, the
validation and test metrics, how and with what it was trained (backend, versions, the resolved
spec), the curves, and how to load, serve and open it elsewhere. Rendered from the manifest and
the run record only, so every folder gets one, trained or re-saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import yaml

from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.reports.curves import CURVES_NAME
from bertbridge.core.reports.record import RunRecord

CARD_NAME = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NOT_QUALITY = ("train_", "world_size", "support_", "test_support_")


@dataclass(frozen=True)
class CardFacts:
    """What the task and the registries know that the manifest does not."""

    pipeline_tag: str
    """The Hub's task name (``text-classification``, ``question-answering``)."""
    example_inputs: Any
    """A ``predict`` argument to show (JSON-ready)."""
    backends: Sequence[str] = ()
    """The installed backends that open a folder of this task."""
    hub_base_model: Optional[str] = None
    """The Hub id of the base model, when known (an alias's, or ``model.name`` itself)."""
    transformers_class: Optional[str] = None
    """``config.json``'s ``architectures[0]``."""


def render_card(name: str, manifest: Manifest, record: Optional[RunRecord], facts: CardFacts) -> str:
    """The card's text for the folder ``name``."""
    sections = [
        _front_matter(manifest, record, facts),
        f"# {name}\n\n{_summary(manifest, facts)}",
        _metrics_section(manifest),
        _training_section(manifest, record),
        _usage_section(manifest, facts),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _front_matter(manifest: Manifest, record: Optional[RunRecord], facts: CardFacts) -> str:
    meta: dict[str, Any] = {"library_name": "bertbridge", "pipeline_tag": facts.pipeline_tag,
                            "tags": ["bertbridge", manifest.backend, facts.pipeline_tag]}
    base = facts.hub_base_model or (manifest.base_model if _HUB_ID.match(manifest.base_model or "") else None)
    if base:
        meta["base_model"] = base
    if record is not None and record.metric in manifest.metrics:  # the headline metric; the body has them all
        meta["metrics"] = [record.metric]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---"


def _summary(manifest: Manifest, facts: CardFacts) -> str:
    base = facts.hub_base_model or manifest.base_model or "a BERT-family model"
    lines = [f"A `{manifest.task}` model fine-tuned from `{base}` with bertbridge on the `{manifest.backend}` backend"
             + (f", exported as `{manifest.export.get('format')}`." if manifest.export else ".")]
    if manifest.labels:
        kind = "multi-label (sigmoid, threshold " + f"{manifest.threshold:g})" if manifest.multi_label else "single-label"
        lines.append(f"Labels ({kind}): " + ", ".join(f"`{label}`" for label in manifest.labels) + ".")
    lines.append(f"Inputs are cut to {manifest.max_seq_length} tokens"
                 + (" (lowercased)." if manifest.lowercase else "."))
    return "\n".join(lines)


def _quality(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not k.startswith(_NOT_QUALITY)}


def _metrics_section(manifest: Manifest) -> str:
    quality = _quality(manifest.metrics)
    names = sorted({k.removeprefix("test_") for k in quality})
    if not names:
        return "## Evaluation\n\nNo validation or test data was given, so there are no metrics."
    test = any(k.startswith("test_") for k in quality)
    rows = ["| metric | validation |" + (" test |" if test else ""), "| --- | --- |" + (" --- |" if test else "")]
    for n in names:
        cells = [_fmt(quality.get(n))] + ([_fmt(quality.get(f"test_{n}"))] if test else [])
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "## Evaluation\n\n" + "\n".join(rows)


def _training_section(manifest: Manifest, record: Optional[RunRecord]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))
    lines = ["## Training", "", f"- Backend: `{manifest.backend}`" + (f" ({versions})" if versions else "")]
    if manifest.created:
        lines.append(f"- Saved: {manifest.created}")
    m = manifest.metrics
    if "train_seconds" in m:
        lines.append(f"- Training loop: {float(m['train_seconds']):.1f} s, {float(m.get('train_samples_per_s', 0)):.1f} samples/s"
                     + (f", {int(m['world_size'])} worker(s)" if "world_size" in m else ""))
    if record is None:
        lines.append("- The run record (spec, curves) was not saved with this folder.")
        return "\n".join(lines)
    if record.evaluations or record.train:
        last = (record.evaluations or record.train)[-1]
        lines.append(f"- {last['step']} optimizer steps, {float(last.get('epoch') or 0):.2f} epochs logged")
    lines += ["", f"![training curves]({CURVES_NAME})", "", "The resolved spec:", "", "```yaml",
              yaml.safe_dump(dict(record.spec), sort_keys=False, allow_unicode=True).rstrip(), "```"]
    return "\n".join(lines)


def _usage_section(manifest: Manifest, facts: CardFacts) -> str:
    example = repr(facts.example_inputs)
    body = ["## Use it", "", "```python", "import bertbridge", "", 'model = bertbridge.load("PATH/TO/THIS/FOLDER")',
            f"model.predict({example})", "```", "",
            "Serve it behind SageMaker's `/ping` + `/invocations` contract:", "", "```bash",
            "bertbridge serve PATH/TO/THIS/FOLDER --port 8080", "```"]
    if facts.backends and not manifest.export:
        body += ["", "The weights are Hugging Face `model.safetensors` with Hugging Face names, so this folder opens on "
                 + ", ".join(f"`{b}`" for b in facts.backends) + " (`bertbridge.load(path, backend=...)`)"
                 + (f" and in `transformers` (`{facts.transformers_class}.from_pretrained(path)`)." if facts.transformers_class else ".")]
    return "\n".join(body)


def _fmt(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"
