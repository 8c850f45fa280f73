"""The spec's ``tracking`` section: TensorBoard event files and MLflow runs with the numbers the log
lines print, through the same hooks a third-party plugin gets; missing packages give the install line."""

import re
import sys

import pytest

pytest.importorskip("torch")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.errors import NotSupportedError  # noqa: E402
from bertbridge.core.hookspecs import hookimpl  # noqa: E402
from bertbridge.core.plugins.registry import plugin_manager  # noqa: E402

LINE = re.compile(r"^(\w+)=(\S+)  # (\w+), step (\d+), epoch")


def spec_for(tiny_model_dir, tmp_path, **tracking):
    data = {"train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(48, 1))),
            "validation": str(write_tsv(tmp_path / "v.tsv", toy_sentences(16, 2)))}
    spec = tiny_spec(tiny_model_dir, data, tmp_path / "model", epochs=2)
    spec["training"]["log_interval"] = 2
    spec["tracking"] = tracking
    return spec


def logged(out: str) -> dict[tuple[str, int], float]:
    """(name, step) -> value of every ``name=value  # stage, step N`` line (train, eval and saved stages)."""
    found = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m and m.group(3) in ("train", "eval", "saved"):
            found[(m.group(1), int(m.group(4)))] = float(m.group(2))
    return found


def test_tensorboard_event_files_hold_the_logged_values(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    model = bertbridge.train(spec_for(tiny_model_dir, tmp_path, tensorboard=str(tmp_path / "tb")))
    lines = logged(capsys.readouterr().out)
    (run,) = list((tmp_path / "tb").iterdir())
    assert run.name.startswith("model-")
    acc = event_accumulator.EventAccumulator(str(run))
    acc.Reload()
    scalars = {(tag, e.step): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
    assert {"train_loss", "learning_rate", "eval_accuracy", "eval_loss"} <= {tag for tag, _ in scalars}
    assert set(scalars) == set(lines)
    for key, value in lines.items():  # the log lines print 6 significant digits; the events are float32
        assert scalars[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert scalars[("eval_accuracy", model.training_result.steps)] == pytest.approx(model.metrics["accuracy"])


def test_mlflow_run_has_the_spec_the_metrics_and_the_model(tiny_model_dir, tmp_path, capsys, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps its artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model = bertbridge.train(spec_for(tiny_model_dir, tmp_path, mlflow=True, mlflow_uri=uri, experiment="reviews"))
    lines = logged(capsys.readouterr().out)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        runs = mlflow.search_runs(experiment_names=["reviews"], output_format="list")
        assert len(runs) == 1
        run = runs[0]
        client = mlflow.MlflowClient(uri)
        history = {(name, m.step): m.value for name in ("train_loss", "eval_accuracy") for m in client.get_metric_history(run.info.run_id, name)}
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    finally:
        mlflow.set_tracking_uri(previous)
    assert run.info.status == "FINISHED" and run.data.tags["bertbridge.backend"] == "pytorch"
    assert run.data.params["training.epochs"] == "2" and run.data.params["training.log_interval"] == "2"
    assert run.data.params["data.train"] == str(tmp_path / "t.tsv")
    assert history == {k: pytest.approx(v, rel=1e-5) for k, v in lines.items() if k[0] in ("train_loss", "eval_accuracy")}
    assert run.data.metrics["eval_accuracy"] == pytest.approx(model.metrics["accuracy"])
    assert {"model/model.safetensors", "model/bertbridge.json", "model/README.md"} <= artifacts


def test_a_missing_package_stops_the_run_before_training_with_the_install_line(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if it were not installed
    calls = []

    class Recorder:  # registered after the built-in plugin, so pluggy calls it first
        @hookimpl
        def bertbridge_run_started(self, spec, backend):
            calls.append("started")

        @hookimpl
        def bertbridge_run_finished(self, spec, model_dir, metrics, error):
            calls.append(("finished", type(error).__name__))

    plugin_manager().register(Recorder(), name="test-recorder")
    with pytest.raises(NotSupportedError, match=r"tracking\.tensorboard needs the tensorboardX package, which is not "
                                                r"installed: pip install 'bertbridge\[tracking\]'"):
        bertbridge.train(spec_for(tiny_model_dir, tmp_path, tensorboard=str(tmp_path / "tb")))
    assert not (tmp_path / "model").exists()
    assert calls == ["started", ("finished", "NotSupportedError")]  # a plugin that started hears the end


def test_run_hooks_fire_once_each_with_the_outcome(tiny_model_dir, tmp_path):
    calls = []

    class Recorder:
        @hookimpl
        def bertbridge_run_started(self, spec, backend):
            calls.append(("started", backend, spec.training.epochs))

        @hookimpl
        def bertbridge_run_finished(self, spec, model_dir, metrics, error):
            calls.append(("finished", model_dir, metrics.get("accuracy"), error))

    plugin_manager().register(Recorder(), name="test-recorder")
    model = bertbridge.train(spec_for(tiny_model_dir, tmp_path))
    assert calls == [("started", "pytorch", 2), ("finished", model.path, model.metrics["accuracy"], None)]

    calls.clear()
    (tmp_path / "again").mkdir()
    from bertbridge.backends.pytorch.model import TorchClassifier

    def failing_step(self, lr):
        raise RuntimeError("boom")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TorchClassifier, "step", failing_step)
        with pytest.raises(RuntimeError, match="boom"):
            bertbridge.train(spec_for(tiny_model_dir, tmp_path / "again"))
    assert [c[0] for c in calls] == ["started", "finished"] and calls[1][1] is None and str(calls[1][3]) == "boom"


def test_a_failed_run_is_marked_failed_in_mlflow(tiny_model_dir, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps its artifacts in ./mlruns
    from bertbridge.backends.pytorch.model import TorchClassifier

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TorchClassifier, "step", lambda self, lr: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError, match="boom"):
            bertbridge.train(spec_for(tiny_model_dir, tmp_path, mlflow=True, mlflow_uri=uri))
    (run,) = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name("bertbridge").experiment_id])
    assert run.info.status == "FAILED" and not mlflow.MlflowClient(uri).list_artifacts(run.info.run_id)
