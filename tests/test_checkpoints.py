"""Checkpoints: an interrupted run resumes where it stopped and ends with the same model."""

import json
import shutil

import numpy as np
import pytest
from conftest import tiny_spec
from test_trainer import Recorder, _features

import bertbridge
from bertbridge.core.errors import ArtifactError
from bertbridge.core.io import checkpoints
from bertbridge.core.spec import TrainingConfig
from bertbridge.core.training.loop import fit

TEXTS = ["the film was good", "a dull and boring plot", "it is really lovely", "ugly"]


class Interrupted(Recorder):
    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def step(self, learning_rate):
        if self.weights + 1 == self.at_step:
            raise KeyboardInterrupt
        super().step(learning_rate)


def test_loop_resumes_at_the_right_batch(tmp_path):
    feats, targets = _features(40)  # 5 steps per epoch
    cfg = TrainingConfig(epochs=2, batch_size=8, checkpoint_dir=str(tmp_path), checkpoint_interval=2)
    straight = Recorder()
    fit(straight, feats, targets, TrainingConfig(epochs=2, batch_size=8), evaluate=None, log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        fit(Interrupted(at_step=8), feats, targets, cfg, evaluate=None, log=lambda *a: None, fingerprint="f")
    assert checkpoints.latest(tmp_path).name == "checkpoint-6"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-6"]  # older ones are removed
    resumed = Recorder()
    result = fit(resumed, feats, targets, cfg, evaluate=None, log=lambda *a: None, fingerprint="f")
    assert result.steps == 10 and resumed.weights == 10
    # the resumed run sees exactly the batches the uninterrupted one saw after step 6
    assert resumed.calls == straight.calls[-len(resumed.calls):] and len([c for c in resumed.calls if c[0] == "step"]) == 4


def test_checkpoint_of_another_run_is_refused(tmp_path):
    feats, targets = _features(16)
    cfg = TrainingConfig(epochs=1, batch_size=8, checkpoint_dir=str(tmp_path))
    fit(Recorder(), feats, targets, cfg, evaluate=None, log=lambda *a: None, fingerprint="run-a")
    with pytest.raises(ArtifactError, match="belongs to a run with a different spec or data"):
        fit(Recorder(), feats, targets, cfg, evaluate=None, log=lambda *a: None, fingerprint="run-b")


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    feats, targets = _features(16)
    cfg = TrainingConfig(epochs=1, batch_size=8, checkpoint_dir=str(tmp_path))
    fit(Recorder(), feats, targets, cfg, evaluate=None, log=lambda *a: None)
    (checkpoints.latest(tmp_path) / checkpoints.STATE).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="unreadable checkpoint"):
        fit(Recorder(), feats, targets, cfg, evaluate=None, log=lambda *a: None)


@pytest.fixture()
def dropout_model_dir(tiny_model_dir, tmp_path):
    folder = tmp_path / "dropout"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}))
    return folder


@pytest.mark.parametrize("backend, module", [("pytorch", "torch"), ("tensorflow", "tensorflow")])
def test_interrupted_training_resumes_to_the_same_model(dropout_model_dir, toy_data, tmp_path, monkeypatch, backend, module):
    pytest.importorskip(module)
    common = dict(epochs=3, checkpoint_interval=5)
    straight = bertbridge.train(tiny_spec(dropout_model_dir, toy_data, tmp_path / "straight", checkpoint_dir=str(tmp_path / "ck1"), **common), backend=backend)

    spec = tiny_spec(dropout_model_dir, toy_data, tmp_path / "resumed", checkpoint_dir=str(tmp_path / "ck2"), **common)
    model_cls = type(bertbridge.core.plugins.registry.backends().get(backend).create_model(dropout_model_dir, _setup()))
    real_step, calls = model_cls.step, {"n": 0}

    def dying_step(self, lr):
        calls["n"] += 1
        if calls["n"] == 23:  # mid-epoch 2, three steps after the checkpoint at step 20
            raise KeyboardInterrupt
        real_step(self, lr)

    monkeypatch.setattr(model_cls, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        bertbridge.train(spec, backend=backend)
    monkeypatch.setattr(model_cls, "step", real_step)
    assert checkpoints.latest(tmp_path / "ck2").name == "checkpoint-20"
    resumed = bertbridge.train(spec, backend=backend)
    assert resumed.training_result.steps == straight.training_result.steps == 36
    np.testing.assert_allclose(resumed.predict_proba(TEXTS), straight.predict_proba(TEXTS), atol=1e-6)
    assert resumed.metrics["accuracy"] == straight.metrics["accuracy"]
    # the curves of the resumed run start at step 1, as the uninterrupted run's do (the record is in the checkpoint)
    history = [json.loads((m.path / "training_history.json").read_text()) for m in (resumed, straight)]
    for key in ("train", "evaluations"):
        assert [e["step"] for e in history[0][key]] == [e["step"] for e in history[1][key]]
    assert history[0]["train"][0]["step"] == straight.training_result.train_history[0]["step"] < 20


def _setup():
    from bertbridge.core.backend import ModelSetup

    return ModelSetup(num_labels=2, multi_label=False, id2label={0: "negative", 1: "positive"}, seed=7)


def test_other_tools_checkpoint_folders_are_left_alone(tmp_path):
    foreign = tmp_path / "checkpoint-500"
    foreign.mkdir()
    (foreign / "optimizer.pt").write_bytes(b"someone else's")
    checkpoints.save(tmp_path, 1, {"w": np.zeros(1)}, {"step": 1})
    checkpoints.save(tmp_path, 2, {"w": np.zeros(1)}, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-500"]
