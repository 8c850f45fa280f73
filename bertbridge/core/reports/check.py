"""The cross-framework check a saved folder passes before its card is written: the backend's logits
against a framework-free reading of the same files (:mod:`bertbridge.core.io.numpy_bert`, float64),
on a few probe inputs. Agreement means the folder holds what the framework computed, under the names
and layout every other backend and ``transformers`` read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from bertbridge.core.io import numpy_bert
from bertbridge.core.text.batching import encode_batch

TOLERANCE = 1e-3
"""The largest absolute logit difference that passes (float32 against float64 is ~1e-6; a wrong
weight name or layout is ~1)."""
MIXED_PRECISION_TOLERANCE = 5e-2
"""The same for a model that computes in bfloat16 (``training.mixed_precision``): ~1e-2 is bf16 rounding."""
MAX_WEIGHT_BYTES = 600_000_000
"""Above this ``model.safetensors`` size (~150M float32 values) the check is skipped: the numpy reader keeps a
float64 copy of every weight, which a small instance should not have to hold at save time."""


def cross_check(folder: Path, model, encoder, head: str, probes: Sequence[tuple[str, Optional[str]]],
                max_length: int, *, mixed_precision: bool = False) -> dict[str, Any]:
    """Compare ``model``'s logits (the model in memory, that was saved) with the numpy reader of ``folder``
    on ``probes`` ((text, pair) tuples)."""
    size = (Path(folder) / "model.safetensors").stat().st_size
    if size > MAX_WEIGHT_BYTES:
        return {"passed": None, "note": f"not run: the weights ({size / 1e6:.0f} MB) are over the {MAX_WEIGHT_BYTES / 1e6:.0f} MB "
                                        "the save-time check reads (its float64 copy would need twice that again)."}
    tolerance = MIXED_PRECISION_TOLERANCE if mixed_precision else TOLERANCE
    _, batch = encode_batch(encoder, probes, max_length)
    got = np.asarray(model.logits(batch), dtype=np.float64)
    want = numpy_bert.logits(folder, batch, head)
    mask = batch["attention_mask"].astype(bool)
    diff = np.abs(got - want)
    if head == "span":  # padding positions are not answers
        diff = diff[mask]
    worst = float(diff.max())
    return {"reference": "numpy float64 BERT reading config.json + model.safetensors", "inputs": len(probes),
            "max_abs_logit_diff": worst, "tolerance": tolerance, "passed": worst <= tolerance,
            "mixed_precision": mixed_precision}
