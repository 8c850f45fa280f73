"""A trial's values for the spec's ``tuning.parameters``, drawn by an Optuna trial.

Each searched field becomes an Optuna parameter of the same dotted name, so the trials
table, Optuna's own tools and a SageMaker tuning job all call it ``training.learning_rate``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from bertbridge.core.spec import SearchParameter


def suggest(trial: Any, parameters: Sequence[SearchParameter]) -> dict[str, Any]:
    """``{dotted.field: value}`` for this trial, one draw per searched field."""
    return {p.path: _draw(trial, p) for p in parameters}


def _draw(trial: Any, p: SearchParameter) -> Any:
    if p.kind == "choice":
        return trial.suggest_categorical(p.path, list(p.values))
    if p.kind == "int_uniform":
        return trial.suggest_int(p.path, p.values[0], p.values[1])
    return trial.suggest_float(p.path, p.values[0], p.values[1], log=p.kind == "log_uniform")


def as_overrides(values: dict[str, Any]) -> list[str]:
    """The values as ``--set`` overrides (JSON values, which the spec parses as YAML)."""
    return [f"{path}={json.dumps(value)}" for path, value in values.items()]
