"""The accuracy budget of a quantized export: the export and the model it came from, scored on the
same labelled file by the task's own evaluation, and the drop between them.

Example (a classifier; ``drop`` is in points, here accuracy x 100)::

    >>> check = compare(task, manifest, model, exported, encoder, "dev.tsv", max_drop=1.0)  # doctest: +SKIP
    >>> check["metric"], check["model"], check["export"], check["drop"]                    # doctest: +SKIP
    ('accuracy', 0.8510, 0.8475, 0.35)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from bertbridge.core.errors import ArtifactError, DataError

if TYPE_CHECKING:
    from bertbridge.core.backend import InferenceModel
    from bertbridge.core.io.artifacts import Manifest
    from bertbridge.core.task import Task
    from bertbridge.core.text.tokenize import TextEncoder

BATCH_SIZE = 64


def validation_file(given: Union[str, Path, None], manifest: "Manifest", model: Path) -> Path:
    """The labelled file a quantized export is checked on: ``given``, else the training run's
    validation file (recorded in the manifest) when it is still there."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise DataError(f"--validate {given}: no such file. Give the labelled file to check the export on.")
        return path
    recorded = manifest.data.get("validation_file")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    where = f" (the training run's, {recorded}, is gone)" if recorded else ""
    raise DataError(f"{model}: a quantized export is checked against the model on labelled data, and none was "
                    f"given{where}. Pass --validate DATA (validate= in the API): a file read like the training data.")


def compare(task: "Task", manifest: "Manifest", model: "InferenceModel", exported: "InferenceModel",
            encoder: "TextEncoder", data: Path, *, max_drop: float) -> dict[str, Any]:
    """Score both on ``data``; the numbers for the export's manifest. Raises ArtifactError (naming
    both scores) when the export loses more than ``max_drop`` points."""
    metric, points = task.quality_metric(manifest)
    before = _score(task, manifest, model, encoder, data, metric)
    after = _score(task, manifest, exported, encoder, data, metric)
    drop = round((before - after) * points, 4)
    check = {"data": str(Path(data).resolve()), "metric": metric, "model": round(before, 6), "export": round(after, 6),
             "drop": drop, "max_drop": max_drop, "points": "x100" if points == 100 else "as is"}
    if drop > max_drop:
        raise ArtifactError(
            f"the quantized export scores {metric} {after:.4f} on {data} against the model's {before:.4f}: a drop of "
            f"{drop:.2f} points, over the {max_drop:g}-point budget (--max-drop), so nothing was written. "
            f"{_resolution_note(max_drop)}Check on more labelled data with --validate DATA, export without --quantize, "
            "or accept the loss with a larger --max-drop."
        )
    return check


def _resolution_note(max_drop: float) -> str:
    """On N examples one changed prediction is worth up to 100/N points: a small file cannot resolve the budget."""
    if max_drop <= 0:
        return ""
    return (f"On a file of N examples one changed prediction moves the score by up to 100/N points, which is over "
            f"{max_drop:g} below {100 / max_drop:.0f} examples. ")


def _score(task: "Task", manifest: "Manifest", model: "InferenceModel", encoder: "TextEncoder", data: Path, metric: str) -> float:
    predictor = task.predictor(model, encoder, manifest, batch_size=BATCH_SIZE)
    return float(predictor.evaluate(data)[metric])
