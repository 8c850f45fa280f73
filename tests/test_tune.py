"""bertbridge tune: trials of the spec's tuning.parameters with Optuna, pruning through the loop's evaluation
log, the trials table and plot, and the best model saved with the best trial's metric."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import saved_metrics, tiny_spec

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

import bertbridge  # noqa: E402
from bertbridge.core import cli  # noqa: E402
from bertbridge.core.errors import SpecError  # noqa: E402
from bertbridge.core.tuning.search import TuningError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEARCH = {"training.learning_rate": {"log_uniform": [5e-4, 5e-3]}, "training.epochs": {"choice": [3, 6]}}


def _rows(study: Path) -> list[dict]:
    with open(study / "trials.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _spec(model_dir, data, tmp_path, **tuning) -> dict:
    spec = tiny_spec(model_dir, data, tmp_path / "model", eval_interval=4)
    spec["tuning"] = {"trials": 3, "parameters": SEARCH, "out_dir": str(tmp_path / "study"), **tuning}
    if "max_seq_length" in str(tuning.get("parameters")):
        del spec["training"]["max_seq_length"]
    return spec


def test_tune_the_example_spec_saves_the_best_trial(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "best"
    code = cli.main(["tune", str(ROOT / "examples/sentiment/spec.yaml"), "--backend", "pytorch", "--output-dir", str(out),
                     "--set", f"model.name={tiny_model_dir}", "--set", "training.max_seq_length=32",
                     "--set", f"tuning.out_dir={tmp_path / 'study'}"])
    assert code == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if "=" in line)
    rows = _rows(tmp_path / "study")
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]  # the example's tuning.trials
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: float(r["accuracy"]))
    assert printed["best_trial"] == best["trial"] and printed["model_dir"] == str(out.resolve())
    assert float(printed["training.learning_rate"]) == pytest.approx(float(best["training.learning_rate"]))
    summary = json.loads((tmp_path / "study" / "tuning.json").read_text())
    assert summary["best_value"] == float(best["accuracy"]) == saved_metrics(out)["accuracy"]
    assert (tmp_path / "study" / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "study" / "trials").exists()  # trial folders are gone; the best model is in out


def test_the_saved_model_is_the_best_trials_and_scores_its_value(tiny_model_dir, toy_data, tmp_path):
    result = bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=4, metric="macro_f1"), backend="pytorch")
    values = [t.value for t in result.trials]
    assert len(set(values)) > 1 and result.best_value == max(values) and result.metric == "macro_f1"
    assert bertbridge.evaluate(result.model_dir, toy_data["validation"])["macro_f1"] == pytest.approx(result.best_value)
    record = json.loads((result.model_dir / "training_history.json").read_text())
    assert record["spec"]["training"]["learning_rate"] == result.best_params["training.learning_rate"]  # that trial's run
    assert record["metric"] == record["spec"]["training"]["early_stopping"]["metric"] == "macro_f1"  # best weights by it
    for t in result.trials:  # each evaluation of each trial was reported (every 4 steps, 12 steps an epoch)
        assert len(t.evaluations) == 3 * t.params["training.epochs"]


def test_an_interrupted_search_keeps_the_best_finished_trial_and_its_table(tiny_model_dir, toy_data, tmp_path):
    class StopAtTheThirdTrial(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            if trial.number == 2:
                raise KeyboardInterrupt
            return False

    with pytest.raises(KeyboardInterrupt):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, metric="macro_f1"), backend="pytorch",
                        pruner=StopAtTheThirdTrial())
    rows = _rows(tmp_path / "study")
    assert [r["state"] for r in rows][:2] == ["complete", "complete"] and len(rows) == 3
    best = max(rows[:2], key=lambda r: float(r["macro_f1"]))
    kept = sorted(p.name for p in (tmp_path / "study" / "trials").iterdir() if not p.name.startswith("."))
    assert kept == [f"{int(best['trial']):03d}"]  # only the best finished trial's model stays on disk
    assert saved_metrics(tmp_path / "study" / "trials" / kept[0])["macro_f1"] == float(best["macro_f1"])
    assert not (tmp_path / "model").exists()


def test_the_distributions_draw_what_they_say():
    from bertbridge.core.spec import TaskSpec
    from bertbridge.core.tuning.space import as_overrides, suggest

    spec = TaskSpec.from_dict({"tuning": {"parameters": {
        "training.learning_rate": {"log_uniform": [1e-6, 1e-1]}, "training.warmup_ratio": {"uniform": [0.0, 0.5]},
        "training.epochs": {"int_uniform": [1, 3]}, "training.mixed_precision": {"choice": [True, False]}}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws = [suggest(study.ask(), spec.tuning.parameters.parameters) for _ in range(200)]
    rates = [d["training.learning_rate"] for d in draws]
    assert sum(r < 1e-3 for r in rates) > 100  # log scale: 3 of its 5 decades lie below 1e-3 (uniform: 1%)
    assert all(0 <= d["training.warmup_ratio"] <= 0.5 for d in draws) and max(d["training.warmup_ratio"] for d in draws) > 0.4
    assert {d["training.epochs"] for d in draws} == {1, 2, 3} and {d["training.mixed_precision"] for d in draws} == {True, False}
    overrides = as_overrides(draws[0])
    assert spec.with_overrides(overrides).training.learning_rate == draws[0]["training.learning_rate"]


class _PruneAfterFirst(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number > 0


def test_a_pruned_trial_stops_at_its_evaluation_and_saves_nothing(tiny_model_dir, toy_data, tmp_path):
    result = bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path), backend="pytorch", pruner=_PruneAfterFirst())
    assert [t.state for t in result.trials] == ["complete", "pruned", "pruned"]
    assert [len(t.evaluations) for t in result.trials[1:]] == [1, 1]  # stopped at the first evaluation
    assert result.best_trial == 0 and saved_metrics(result.model_dir)["accuracy"] == result.best_value
    assert [r["state"] for r in _rows(tmp_path / "study")] == ["complete", "pruned", "pruned"]


def test_no_finished_trial_is_an_error_naming_the_counts(tiny_model_dir, toy_data, tmp_path):
    class PruneAll(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return True

    with pytest.raises(TuningError, match="no trial finished \\(0 complete, 2 pruned, 0 failed\\)"):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=2), backend="pytorch", pruner=PruneAll())
    assert not (tmp_path / "model").exists() and [r["state"] for r in _rows(tmp_path / "study")] == ["pruned", "pruned"]


@pytest.mark.parametrize("change, message", [
    ({"tuning": {"parameters": {}}}, "tuning.parameters is empty"),
    ({"data": {"validation": None}}, "tuning needs data.validation"),
    ({"tuning": {"metric": "macro_f1"}, "training": {"early_stopping": {"metric": "accuracy"}}}, "must agree"),
    ({"tuning": {"metric": "exact"}}, "tuning.metric is 'exact'; for text_classification use one of"),
    ({"tuning": {"direction": "minimize"}}, "leave tuning.direction out"),
])
def test_a_search_that_cannot_work_is_refused_before_any_trial(tiny_model_dir, toy_data, tmp_path, change, message):
    spec = _spec(tiny_model_dir, toy_data, tmp_path)
    for section, values in change.items():
        spec[section] = {**spec[section], **values}
    with pytest.raises(SpecError, match=message):
        bertbridge.tune(spec, backend="pytorch")
    assert not (tmp_path / "study").exists()


def test_a_study_folder_with_other_files_is_left_alone(tiny_model_dir, toy_data, tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match="not a bertbridge study's \\(notes.txt\\)"):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path), backend="pytorch")
    assert (tmp_path / "study" / "notes.txt").read_text() == "mine"


def test_trials_run_on_tensorflow(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("tensorflow")
    result = bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=2), backend="tensorflow")
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert json.loads((result.model_dir / "bertbridge.json").read_text())["backend"] == "tensorflow"
    assert saved_metrics(result.model_dir)["accuracy"] == result.best_value


def test_trials_run_on_mxnet_through_the_forwarded_command(tiny_model_dir, toy_data, tmp_path):
    """bertbridge tune --backend mxnet from this environment runs the whole search in the MXNet one."""
    import os
    import subprocess
    import sys

    from conftest import mx_python

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec(tiny_model_dir, toy_data, tmp_path, trials=2)))
    env = {**os.environ, "BERTBRIDGE_MXNET_PYTHON": mx_python()}
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "tune", str(spec), "--backend", "mxnet"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"model_dir={tmp_path / 'model'}" in run.stdout
    rows = _rows(tmp_path / "study")
    assert [r["state"] for r in rows] == ["complete", "complete"]
    assert json.loads((tmp_path / "model" / "bertbridge.json").read_text())["backend"] == "mxnet"
    assert saved_metrics(tmp_path / "model")["accuracy"] == max(float(r["accuracy"]) for r in rows)


def test_a_trial_whose_values_fail_is_recorded_and_the_search_goes_on(tiny_model_dir, toy_data, tmp_path, capsys):
    spec = _spec(tiny_model_dir, toy_data, tmp_path, trials=4,
                 parameters={"training.max_seq_length": {"choice": [16, 128]}, **SEARCH})  # the tiny BERT reads 64 at most
    spec["training"]["checkpoint_dir"] = str(tmp_path / "checkpoints")  # trials never resume one another's checkpoints
    result = bertbridge.tune(spec, backend="pytorch", sampler=optuna.samplers.RandomSampler(seed=1))
    states = {t.number: (t.state, t.params["training.max_seq_length"]) for t in result.trials}
    assert {state for state, length in states.values() if length == 128} == {"failed"}
    assert {state for state, length in states.values() if length == 16} == {"complete"}
    failed = next(r for r in _rows(tmp_path / "study") if r["state"] == "failed")
    assert "handles at most 64 tokens" in failed["error"] and "error='training.max_seq_length is 128" in capsys.readouterr().out
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_a_field_both_searched_and_set_is_refused(tiny_model_dir, toy_data, tmp_path):
    with pytest.raises(SpecError, match="--set training.epochs=... sets a field that tuning.parameters searches"):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path), backend="pytorch", overrides=["training.epochs=2"])


def test_a_rerun_keeps_an_interrupted_searchs_model_and_replaces_a_finished_study(tiny_model_dir, toy_data, tmp_path):
    study = tmp_path / "study"
    (study / "trials" / "003").mkdir(parents=True)
    (study / "trials.csv").write_text("trial,state\n")
    with pytest.raises(SpecError, match="still holds the best model of an interrupted search \\(trials/003\\)"):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=1), backend="pytorch")
    (study / "trials" / "003").rmdir()
    result = bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=1), backend="pytorch")
    assert [r["trial"] for r in _rows(study)] == ["0"] and result.model_dir == (tmp_path / "model").resolve()
    lonely = tmp_path / "lonely"
    (lonely / "trials").mkdir(parents=True)  # a folder named like ours, without a study beside it
    with pytest.raises(SpecError, match="not a bertbridge study's \\(trials\\)"):
        bertbridge.tune(_spec(tiny_model_dir, toy_data, tmp_path, trials=1, out_dir=str(lonely)), backend="pytorch")
