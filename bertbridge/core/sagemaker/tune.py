"""``bertbridge sagemaker tune``: the spec's ``tuning`` section as a SageMaker hyperparameter
tuning job (SDK v3 ``HyperparameterTuner`` over the ``ModelTrainer`` that ``sagemaker train`` builds).

Each searched field becomes a parameter range of the same dotted name (``log_uniform``:
a logarithmic continuous range, ``uniform``: linear, ``int_uniform``: an integer range,
``choice``: categorical), which the script-mode entry point applies as a spec override. The
objective, ``objective_<metric>``, reads two log lines: ``eval_<metric>`` at each evaluation
(the values SageMaker's early stopping compares) and then ``saved_<metric>``, logged once
training ends with the validation metric of the model the job saves. The last value is the
job's final one, so SageMaker ranks jobs by the same number as ``bertbridge tune``. ``tuning.trials`` is the job count, ``tuning.max_parallel`` how many run
at once, ``tuning.pruning`` turns on SageMaker's early stopping (``Auto``), and
``tuning.seed`` (else ``training.seed``) seeds the search.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from bertbridge.core.errors import NotSupportedError
from bertbridge.core.plugins.registry import tasks
from bertbridge.core.sagemaker.launch import prepared_job
from bertbridge.core.spec import SearchParameter
from bertbridge.core.tuning.search import objective

STRATEGIES = ("Bayesian", "Random", "Hyperband")
METRIC_PATTERN = r"([-+0-9.eE]+|nan|inf)"


@dataclass
class LaunchedTuning:
    tuning_job: str
    objective: str
    image: str
    s3_prefix: str
    tuner: Any


def launch_tuning(
    spec_path,
    *,
    role: str,
    instance_type: str,
    instance_count: Optional[int] = None,
    backend: Optional[str] = None,
    overrides: Sequence[str] = (),
    strategy: str = "Bayesian",
    bucket: Optional[str] = None,
    region: Optional[str] = None,
    max_run_seconds: int = 24 * 3600,
    image: Optional[str] = None,
    job_name: Optional[str] = None,
    wait: bool = False,
    boto_session: Any = None,
) -> LaunchedTuning:
    """Upload data, spec, model and code once, and start a tuning job of ``tuning.trials`` training jobs."""
    from bertbridge.core.api import load_spec

    spec = load_spec(spec_path, overrides)
    metric, minimize = objective(spec, tasks().get(spec.task.type))
    if strategy not in STRATEGIES:
        raise NotSupportedError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}.")
    if job_name is not None and not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", job_name):
        raise NotSupportedError(f"--job-name {job_name!r}: a tuning job name has 1 to 32 letters, digits and hyphens "
                                "(no hyphen first or last).")
    if spec.debugger.attention:
        raise NotSupportedError("debugger.attention is not recorded in a tuning job's training jobs; set "
                                "debugger.attention: false (or capture one run with bertbridge sagemaker train).")
    fixed = [*overrides, f"training.early_stopping.metric={metric}"]
    with prepared_job(spec, role=role, instance_type=instance_type, instance_count=instance_count, backend=backend,
                      hyperparameters=fixed, bucket=bucket, region=region, max_run_seconds=max_run_seconds,
                      image=image, boto_session=boto_session, kind="tuning") as job:
        # trials share the job's settings: a shared checkpoint folder would let one trial resume another's run
        job.trainer.checkpoint_config = None
        name = job_name or f"bb-tune-{time.strftime('%Y%m%d-%H%M%S')}"  # tuning job names: at most 32 characters
        tuner = _tuner(job.trainer, spec, metric, minimize, strategy)
        tuner.tune(inputs=job.inputs, job_name=name, wait=wait)
    return LaunchedTuning(name, f"objective_{metric}", job.image, job.s3_prefix, tuner)


def objective_definition(metric: str) -> dict:
    """The objective's metric definition: each evaluation's value, then the saved model's."""
    return {"Name": f"objective_{metric}", "Regex": rf"^(?:eval|saved)_{re.escape(metric)}={METRIC_PATTERN}"}


def _tuner(trainer: Any, spec, metric: str, minimize: bool, strategy: str):
    from sagemaker.train.tuner import HyperparameterTuner

    from bertbridge.core.sagemaker.launch import METRIC_DEFINITIONS

    definitions = [*METRIC_DEFINITIONS, objective_definition(metric)]
    objective_name = definitions[-1]["Name"]
    cfg = spec.tuning
    return HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=objective_name,
        objective_type="Minimize" if minimize else "Maximize",
        hyperparameter_ranges={p.path: parameter_range(p) for p in cfg.parameters.parameters},
        metric_definitions=definitions,
        strategy=strategy,
        max_jobs=cfg.trials,
        max_parallel_jobs=cfg.max_parallel,
        early_stopping_type="Auto" if cfg.pruning and strategy != "Hyperband" else "Off",
        random_seed=cfg.seed if cfg.seed is not None else spec.training.seed,
        base_tuning_job_name="bb-tune",
    )


def parameter_range(p: SearchParameter):
    """The SDK's range for one searched field."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    if p.kind == "choice":  # JSON, as the entry point decodes values: "yes" stays a string, 2 a number
        return CategoricalParameter([json.dumps(v) for v in p.values])
    if p.kind == "int_uniform":
        return IntegerParameter(p.values[0], p.values[1], scaling_type="Linear")
    return ContinuousParameter(p.values[0], p.values[1], scaling_type="Logarithmic" if p.kind == "log_uniform" else "Linear")
