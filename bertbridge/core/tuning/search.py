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
import math
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
    ``best_value`` is its validation ``metric``, the value in that folder's metrics. (While a search
    runs, or after it was interrupted, the best finished trial's, in the study's trials folder.)"""

    metric: str
    direction: str
    best_trial: Optional[int]
    best_value: Optional[float]
    best_params: dict[str, Any]
    model_dir: Optional[Path]
    out_dir: Path
    trials: list[report.TrialRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        counts = {state: sum(t.state == state for t in self.trials) for state in report.STATES}
        return {"metric": self.metric, "direction": self.direction, "best_trial": self.best_trial,
                "best_value": self.best_value, "best_params": self.best_params,
                "model_dir": None if self.model_dir is None else str(self.model_dir),
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
    check_overrides(spec, overrides)
    target = check_output_dir(Path(output_dir) if output_dir is not None else Path(spec.output_dir))
    optuna = import_optuna()
    out = study_folder(spec.tuning, target)
    direction = "minimize" if minimize else "maximize"
    with locks.hold(target, "output_dir"), locks.hold(out, "tuning.out_dir"), _quiet(optuna):
        _clear_study(out)
        study = optuna.create_study(direction=direction, sampler=sampler or _default_sampler(optuna, spec),
                                    pruner=pruner or _default_pruner(optuna, spec.tuning))
        run = _Trials(spec, backend, metric, out / TRIALS_FOLDER, optuna.TrialPruned)
        result = TuningResult(metric, direction, None, None, {}, None, out)
        try:
            study.optimize(run, n_trials=spec.tuning.trials, callbacks=[run.keep_best], catch=(BertbridgeError,))
        finally:  # an interrupted search still says what it found, and where that model is
            result.trials = [_record(t, run.errors) for t in study.trials]
            _note_best(result, study, run)
            _write_reports(out, result, [p.path for p in spec.tuning.parameters.parameters])
        best = _best(study, result.trials, run.errors)
        _save_best(run.folder(best.number), target)
        shutil.rmtree(out / TRIALS_FOLDER, ignore_errors=True)
        result.model_dir = target
        report.write_summary(out / report.SUMMARY_NAME, result.summary(), result.trials)
    return result


def _note_best(result: TuningResult, study, run: "_Trials") -> None:
    """The best finished trial so far (its model still in the trials folder), if any."""
    try:
        best = study.best_trial
    except ValueError:
        return
    result.best_trial, result.best_value, result.best_params = best.number, best.value, dict(best.params)
    result.model_dir = run.folder(best.number)


def check_overrides(spec: TaskSpec, overrides: Sequence[str]) -> None:
    """A ``--set`` of a searched field would be overwritten by every trial: refused."""
    searched = {p.path for p in spec.tuning.parameters.parameters}
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in searched:
            raise SpecError(f"--set {key}=... sets a field that tuning.parameters searches; each trial draws its own value. "
                            f"Drop the --set, or narrow the search (--set 'tuning.parameters={{...}}').")


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
        names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
        earlier = bool(names & {report.TABLE_NAME, report.SUMMARY_NAME})
        strangers = sorted(names - (_STUDY_FILES if earlier else set()))
        if strangers:
            raise SpecError(f"tuning.out_dir {out} holds files that are not a bertbridge study's ({', '.join(strangers[:3])}); "
                            "choose an empty or new folder (an earlier study there is replaced).")
        kept = sorted(p.name for p in (out / TRIALS_FOLDER).iterdir() if p.is_dir()) if (out / TRIALS_FOLDER).is_dir() else []
        if kept:
            raise SpecError(f"tuning.out_dir {out} still holds the best model of an interrupted search ({TRIALS_FOLDER}/{kept[0]}); "
                            "move it out (or delete it), then run the search again.")
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
    """Optuna's per-trial lines replaced by ours for the search (restored after)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial: our line says why, without a traceback
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
        self.errors: dict[int, str] = {}

    def folder(self, number: int) -> Path:
        return self.root / f"{number:03d}"

    def __call__(self, trial) -> float:
        values = space.suggest(trial, self.spec.tuning.parameters.parameters)
        start = time.perf_counter()
        # trials differ in values, so one trial's checkpoint can never resume another: none are written
        overrides = [*space.as_overrides(values), f"training.early_stopping.metric={self.metric}", "training.checkpoint_dir=null"]
        with reporting(trial, self.metric, self.pruned):
            try:
                model = train(self.spec, backend=self.backend, overrides=overrides, output_dir=self.folder(trial.number))
            except self.pruned:
                _announce(trial.number, "pruned", None, self.metric, values, time.perf_counter() - start)
                raise
            except BertbridgeError as exc:  # this trial's values failed (the search goes on)
                self.errors[trial.number] = str(exc)
                _announce(trial.number, "failed", None, self.metric, values, time.perf_counter() - start, str(exc))
                raise
        value = float(model.metrics[self.metric])
        state = "complete" if math.isfinite(value) else "failed"  # Optuna fails a trial that returns nan
        _announce(trial.number, state, value, self.metric, values, time.perf_counter() - start)
        return value

    def keep_best(self, study, trial) -> None:
        """After each trial: delete every trial folder but the best one's (disk stays at one model)."""
        try:
            best = study.best_trial.number
        except ValueError:  # no trial has finished yet
            best = None
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name.isdigit() and (best is None or int(folder.name) != best):
                shutil.rmtree(folder, ignore_errors=True)


def _announce(number: int, state: str, value: Optional[float], metric: str, values: dict, seconds: float,
              error: str = "") -> None:
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    score = f" {metric}={value:.6g}" if value is not None else ""
    why = f" error={error.splitlines()[0]!r}" if error else ""
    write_line(f"trial={number} state={state}{score} {shown} seconds={seconds:.1f}{why}")


def _record(trial, errors: dict[int, str]) -> report.TrialRecord:
    seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
    return report.TrialRecord(number=trial.number, state=_STATES.get(trial.state.name, trial.state.name.lower()),
                              value=trial.value if trial.state.name == "COMPLETE" else None, params=dict(trial.params),
                              seconds=seconds, evaluations=dict(sorted(trial.intermediate_values.items())),
                              error=errors.get(trial.number, ""))


def _write_reports(out: Path, result: TuningResult, parameters: list[str]) -> None:
    report.write_table(out / report.TABLE_NAME, result.trials, result.metric, parameters)
    report.write_plot(out / report.PLOT_NAME, result.trials, result.metric, result.direction == "minimize")
    report.write_summary(out / report.SUMMARY_NAME, result.summary(), result.trials)  # replaced once a best is saved


def _best(study, records: list, errors: dict[int, str]) -> Any:
    try:
        return study.best_trial
    except ValueError:
        counts = ", ".join(f"{sum(r.state == s for r in records)} {s}" for s in report.STATES)
        first = f" The first failure: {next(iter(errors.values()))}" if errors else ""
        raise TuningError(f"no trial finished ({counts}); see the trials table for what each reached. With pruning, "
                          f"try more trials or tuning.pruning: false.{first}") from None


def _save_best(folder: Path, target: Path) -> None:
    with atomic_directory(target) as staging:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
