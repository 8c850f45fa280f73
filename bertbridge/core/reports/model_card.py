"""``README.md``: a Hugging Face model card for a saved model folder.

YAML front matter in the Hub's model-card format (``library_name``, ``pipeline_tag``, ``tags``,
``metrics``, ``base_model`` when it is a Hub id), then what a reader needs: the labels, the
validation and test metrics, how and with what it was trained (backend, versions, the resolved
spec), the curves, and how to load, serve and open it elsewhere. Rendered from the manifest and
the run record only, so every folder gets one, trained or re-saved.
"""

from __future__ import annotations

import math
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


def render_card(name: str, manifest: Manifest, record: Optional[RunRecord], facts: CardFacts,
                check: Optional[dict[str, Any]] = None) -> str:
    """The card's text for the folder ``name``; ``check`` is :func:`~bertbridge.core.reports.check.cross_check`'s."""
    sections = [
        _front_matter(manifest, record, facts),
        f"# {name}\n\n{_summary(manifest, facts)}",
        _metrics_section(manifest),
        _training_section(manifest, record),
        _check_section(manifest, check),
        _usage_section(manifest, facts),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def plain_card(name: str, manifest: Manifest) -> str:
    """The card when the full one cannot be rendered: front matter and the facts that cannot fail."""
    return (f"---\nlibrary_name: bertbridge\ntags:\n- bertbridge\n---\n\n# {name}\n\nA `{manifest.task}` model trained "
            "with bertbridge; its metrics and settings are in `bertbridge.json`.\n")


def _front_matter(manifest: Manifest, record: Optional[RunRecord], facts: CardFacts) -> str:
    meta: dict[str, Any] = {"library_name": "bertbridge"}
    if facts.pipeline_tag:
        meta["pipeline_tag"] = facts.pipeline_tag
    meta["tags"] = [t for t in ("bertbridge", manifest.backend, facts.pipeline_tag) if t]
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
    return {k: float(v) for k, v in metrics.items()
            if _number(v) is not None and not isinstance(v, bool) and not str(k).startswith(_NOT_QUALITY)}


def _number(value: Any) -> Optional[float]:
    """A finite float, or None for anything else (a hand-edited manifest may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _metrics_section(manifest: Manifest) -> str:
    quality = _quality(manifest.metrics)
    names = sorted({k.removeprefix("test_") for k in quality})
    if not names:
        return "## Evaluation\n\nNo validation or test data was given, so there are no metrics."
    test = any(k.startswith("test_") for k in quality)
    rows = ["| metric | validation |" + (" test |" if test else ""), "| --- | --- |" + (" --- |" if test else "")]
    for n in names:
        cells = [_fmt(quality.get(n))] + ([_fmt(quality.get(f"test_{n}"))] if test else [])
        rows.append(f"| {n.replace('|', '/')} | " + " | ".join(cells) + " |")
    return "## Evaluation\n\n" + "\n".join(rows)


def _training_section(manifest: Manifest, record: Optional[RunRecord]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))
    lines = ["## Training", "", f"- Backend: `{manifest.backend}`" + (f" ({versions})" if versions else "")]
    if manifest.created:
        lines.append(f"- Saved: {manifest.created}")
    seconds, rate, workers = (_number(manifest.metrics.get(k)) for k in ("train_seconds", "train_samples_per_s", "world_size"))
    if seconds is not None:
        lines.append(f"- Training loop: {seconds:.1f} s" + (f", {rate:.1f} samples/s" if rate is not None else "")
                     + (f", {workers:.0f} worker(s)" if workers is not None else ""))
    if record is None:
        lines.append("- The run record (spec, curves) was not saved with this folder.")
        return "\n".join(lines)
    if record.evaluations or record.train:
        last = (record.evaluations or record.train)[-1]
        epoch = _number(last.get("epoch"))
        lines.append(f"- {last['step']} optimizer steps" + (f", {epoch:.2f} epochs" if epoch is not None else "") + " logged")
    lines += ["", f"![training curves]({CURVES_NAME})", "", "The resolved spec:", "", "```yaml",
              yaml.safe_dump(dict(record.spec), sort_keys=False, allow_unicode=True).rstrip(), "```"]
    return "\n".join(lines)


def _check_section(manifest: Manifest, check: Optional[dict[str, Any]]) -> str:
    if not check:
        return ""
    if check.get("passed") is None:
        return f"## Cross-framework check\n\n{check.get('note', 'not run')}"
    verdict = "passed" if check["passed"] else "FAILED"
    return (f"## Cross-framework check\n\n{verdict}: on {check['inputs']} probe inputs, the `{manifest.backend}` backend's "
            f"logits and a framework-free float64 numpy BERT reading this folder's `config.json` + `model.safetensors` "
            f"differ by at most {check['max_abs_logit_diff']:.2e} (tolerance {check['tolerance']:g}"
            + (", the model computed in bfloat16 mixed precision" if check.get("mixed_precision") else "")
            + "), so the files hold what the framework computed, in the layout every backend and `transformers` read.")


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
