"""``bertbridge tune``: search a spec's ``tuning.parameters`` with Optuna, on this machine.

Each trial is one ordinary training run (:func:`bertbridge.train`) of the spec with the
trial's values, on any backend, scored by the validation metric of the model it saves. While
a trial trains, each evaluation is reported to Optuna, whose pruner may stop it there. Only
the best trial's model folder is kept; at the end it is saved to ``output_dir``, and the
study folder (``tuning.out_dir``) holds ``trials.csv``, ``trials.png`` and ``tuning.json``.

Example (runs offline in a few minutes on 2 CPU cores)::

    import bertbridge

    result = bertbridge.tune("examples/sentiment/spec.yaml", overrides=["tuning.trials=2"])
    print(result.best_params, result.best_value)
    clf = bertbridge.load(result.model_dir)
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from bertbridge.core.api import SpecLike, load_spec, train
from bertbridge.core.errors import BertbridgeError, SpecError
from bertbridge.core.io import locks
from bertbridge.core.io.artifacts import atomic_directory, check_output_dir
from bertbridge.core.io.progress import write_line
from bertbridge.core.plugins.registry import tasks
from bertbridge.core.spec import TaskSpec, TuningConfig
from bertbridge.core.task import Task
from bertbridge.core.tuning import report, space
from bertbridge.core.tuning.pruning import reporting

TRIALS_FOLDER = "trials"
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


class TuningError(BertbridgeError):
    """A search that could not give a model (no trial finished)."""


@dataclass
class TuningResult:
    """What :func:`tune` found. ``model_dir`` holds the best trial's model (``bertbridge.load`` it);
    ``best_value`` is its validation ``metric``, the value in that folder's metrics."""

    metric: str
    direction: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    model_dir: Path
    out_dir: Path
    trials: list[report.TrialRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        counts = {state: sum(t.state == state for t in self.trials) for state in report.STATES}
        return {"metric": self.metric, "direction": self.direction, "best_trial": self.best_trial,
                "best_value": self.best_value, "best_params": self.best_params, "model_dir": str(self.model_dir),
                "out_dir": str(self.out_dir), "trials_complete": counts["complete"],
                "trials_pruned": counts["pruned"], "trials_failed": counts["failed"]}


def tune(
    spec: SpecLike,
    *,
    backend: Optional[str] = None,
    overrides: Sequence[str] = (),
    output_dir: Any = None,
    sampler: Any = None,
    pruner: Any = None,
) -> TuningResult:
    """Run ``tuning.trials`` trials of ``spec`` and save the best trial's model to ``output_dir``
    (default: the spec's). ``sampler``/``pruner``: any Optuna sampler or pruner (default: TPE
    seeded with ``tuning.seed``, else ``training.seed``; the median pruner after two trials, or
    none when ``tuning.pruning`` is false). Needs ``pip install 'bertbridge[tune]'``."""
    spec = load_spec(spec, overrides)
    task = tasks().get(spec.task.type)
    metric, minimize = objective(spec, task)
    target = check_output_dir(Path(output_dir) if output_dir is not None else Path(spec.output_dir))
    out = study_folder(spec.tuning, target)
    optuna = import_optuna()
    direction = "minimize" if minimize else "maximize"
    with locks.hold(target, "output_dir"), locks.hold(out, "tuning.out_dir"), _quiet(optuna):
        _clear_study(out)
        study = optuna.create_study(direction=direction, sampler=sampler or _default_sampler(optuna, spec),
                                    pruner=pruner or _default_pruner(optuna, spec.tuning))
        run = _Trials(spec, backend, metric, out / TRIALS_FOLDER, optuna.TrialPruned)
        try:
            study.optimize(run, n_trials=spec.tuning.trials, callbacks=[run.keep_best])
        finally:
            records = [_record(t) for t in study.trials]
            _write_reports(out, records, metric, minimize, [p.path for p in spec.tuning.parameters.parameters])
        best = _best(study, records)
        _save_best(run.folder(best.number), target)
        shutil.rmtree(out / TRIALS_FOLDER, ignore_errors=True)
        result = TuningResult(metric, direction, best.number, best.value, dict(best.params), target, out, records)
        report.write_summary(out / report.SUMMARY_NAME, result.summary(), records)
    return result


def objective(spec: TaskSpec, task: Task) -> tuple[str, bool]:
    """The tuned metric and whether it is minimised, checked before any trial."""
    cfg = spec.tuning
    if not cfg.parameters.parameters:
        raise SpecError("tuning.parameters is empty: name the fields to search, e.g. "
                        "tuning: {parameters: {training.learning_rate: {log_uniform: [1e-5, 1e-4]}}}.")
    if spec.data.validation is None:
        raise SpecError("tuning needs data.validation: trials are compared on the validation metric; give a "
                        "validation file (a part of the training data set aside is enough).")
    allowed = task.monitors(spec)
    watched = spec.training.early_stopping.metric
    metric = cfg.metric or watched or task.default_monitor(spec)
    if metric not in allowed:
        raise SpecError(f"tuning.metric is {metric!r}; for {task.name} use one of: {', '.join(allowed)}.")
    if watched and watched != metric:
        raise SpecError(f"tuning.metric is {metric!r} but training.early_stopping.metric is {watched!r}: a trial keeps the "
                        "weights best by the watched metric, so the two must agree; set one of them.")
    minimize = metric in task.minimized
    if cfg.direction is not None and (cfg.direction == "minimize") != minimize:
        raise SpecError(f"tuning.direction is {cfg.direction!r}, but {metric} is "
                        f"{'minimised' if minimize else 'maximised'} for {task.name}; leave tuning.direction out.")
    return metric, minimize


def study_folder(cfg: TuningConfig, target: Path) -> Path:
    """``tuning.out_dir`` (default ``<output_dir>-tuning``): new, empty or an earlier study's folder."""
    out = Path(cfg.out_dir).expanduser().resolve() if cfg.out_dir else target.with_name(f"{target.name}-tuning")
    if out == target or target in out.parents or out in target.parents:
        raise SpecError(f"tuning.out_dir ({out}) and output_dir ({target}) must not hold one another; give each its own folder.")
    if out.exists():
        if not out.is_dir():
            raise SpecError(f"tuning.out_dir {out} is a file; give a folder path.")
        strangers = sorted(p.name for p in out.iterdir() if p.name not in _STUDY_FILES and not p.name.startswith("."))
        if strangers:
            raise SpecError(f"tuning.out_dir {out} holds files that are not a bertbridge study's ({', '.join(strangers[:3])}); "
                            "choose an empty or new folder (an earlier study there is replaced).")
    out.mkdir(parents=True, exist_ok=True)
    return out


_STUDY_FILES = {report.TABLE_NAME, report.PLOT_NAME, report.SUMMARY_NAME, TRIALS_FOLDER}


def _clear_study(out: Path) -> None:
    """Remove an earlier study's files (checked to be only those by :func:`study_folder`)."""
    for name in _STUDY_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise BertbridgeError("bertbridge tune needs Optuna: pip install 'bertbridge[tune]'.") from None
    return optuna


@contextlib.contextmanager
def _quiet(optuna) -> Iterator[None]:
    """Optuna's per-trial INFO lines replaced by ours for the search (restored after)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _default_sampler(optuna, spec: TaskSpec):
    seed = spec.tuning.seed if spec.tuning.seed is not None else spec.training.seed
    return optuna.samplers.TPESampler(seed=seed)


def _default_pruner(optuna, cfg: TuningConfig):
    if not cfg.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


class _Trials:
    """The objective Optuna calls once per trial, and the callback that keeps only the best model."""

    def __init__(self, spec: TaskSpec, backend: Optional[str], metric: str, folder: Path, pruned: type) -> None:
        self.spec, self.backend, self.metric, self.root, self.pruned = spec, backend, metric, folder, pruned

    def folder(self, number: int) -> Path:
        return self.root / f"{number:03d}"

    def __call__(self, trial) -> float:
        values = space.suggest(trial, self.spec.tuning.parameters.parameters)
        start = time.perf_counter()
        overrides = [*space.as_overrides(values), f"training.early_stopping.metric={self.metric}"]
        with reporting(trial, self.metric, self.pruned):
            try:
                model = train(self.spec, backend=self.backend, overrides=overrides, output_dir=self.folder(trial.number))
            except self.pruned:
                _announce(trial.number, "pruned", None, self.metric, values, time.perf_counter() - start)
                raise
        value = float(model.metrics[self.metric])
        _announce(trial.number, "complete", value, self.metric, values, time.perf_counter() - start)
        return value

    def keep_best(self, study, trial) -> None:
        """After each trial: delete every trial folder but the best one's (disk stays at one model)."""
        try:
            best = study.best_trial.number
        except ValueError:  # no trial has finished yet
            best = None
        for folder in self.root.glob("[0-9][0-9][0-9]"):
            if best is None or folder.name != f"{best:03d}":
                shutil.rmtree(folder, ignore_errors=True)


def _announce(number: int, state: str, value: Optional[float], metric: str, values: dict, seconds: float) -> None:
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    score = f" {metric}={value:.6g}" if value is not None else ""
    write_line(f"trial={number} state={state}{score} {shown} seconds={seconds:.1f}")


def _record(trial) -> report.TrialRecord:
    seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
    return report.TrialRecord(number=trial.number, state=_STATES.get(trial.state.name, trial.state.name.lower()),
                              value=trial.value if trial.state.name == "COMPLETE" else None, params=dict(trial.params),
                              seconds=seconds, evaluations=dict(sorted(trial.intermediate_values.items())))


def _write_reports(out: Path, records: list, metric: str, minimize: bool, parameters: list[str]) -> None:
    report.write_table(out / report.TABLE_NAME, records, metric, parameters)
    report.write_plot(out / report.PLOT_NAME, records, metric, minimize)


def _best(study, records: list) -> Any:
    try:
        return study.best_trial
    except ValueError:
        counts = ", ".join(f"{sum(r.state == s for r in records)} {s}" for s in report.STATES)
        raise TuningError(f"no trial finished ({counts}); see the trials table for what each reached. With pruning, "
                          "try more trials or tuning.pruning: false.") from None


def _save_best(folder: Path, target: Path) -> None:
    with atomic_directory(target) as staging:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
