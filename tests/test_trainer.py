"""The framework-neutral training loop, driven by a recording numpy model."""

import numpy as np
import pytest

from bertbridge.core.backend import TrainableModel
from bertbridge.core.errors import SpecError
from bertbridge.core.spec import EarlyStoppingConfig, TrainingConfig
from bertbridge.core.text.tokenize import Encoded
from bertbridge.core.tasks.classification.task import SINGLE_LABEL_MONITORS
from bertbridge.core.training.early_stopping import Monitor, monitor_metric
from bertbridge.core.training.loop import fit
from bertbridge.core.training.schedule import linear_schedule

ACCURACY = Monitor("accuracy", minimize=False)


class Recorder(TrainableModel):
    def __init__(self):
        self.calls, self.weights = [], 0.0

    def accumulate(self, batch, loss_scale):
        self.calls.append(("acc", len(batch["labels"]), loss_scale, batch["input_ids"].shape[1]))
        return 1.0

    def step(self, learning_rate):
        self.calls.append(("step", learning_rate))
        self.weights += 1

    def logits(self, batch):
        return np.zeros((len(batch["input_ids"]), 2), np.float32)

    def snapshot(self):
        return {"w": np.array([self.weights])}

    def restore(self, snapshot):
        self.weights = float(snapshot["w"][0])

    def training_state(self):
        return {"model.w": np.array([self.weights])}

    def load_training_state(self, state):
        self.weights = float(state["model.w"][0])

    def save(self, directory):
        pass


def _features(n):
    rng = np.random.default_rng(0)
    ids = [np.arange(int(k), dtype=np.int32) for k in rng.integers(2, 20, size=n)]
    return Encoded(ids, [np.zeros_like(x) for x in ids]), np.zeros(n, np.int64)


def test_linear_schedule_matches_warmup_then_decay():
    assert [linear_schedule(s, 10, 2, 1.0) for s in range(11)] == pytest.approx(
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    )
    assert linear_schedule(0, 4, 0, 2.0) == 2.0


def test_accumulation_steps_and_loss_scales():
    feats, targets = _features(50)
    model = Recorder()
    cfg = TrainingConfig(epochs=2, batch_size=8, gradient_accumulation_steps=3, warmup_ratio=0.0, learning_rate=0.1)
    result = fit(model, feats, targets, cfg, evaluate=None, log=lambda *a: None)
    # 7 micro-batches per epoch -> ceil(7/3) = 3 optimizer steps per epoch
    assert result.steps == 6 and result.train_examples == 100
    steps = [c for c in model.calls if c[0] == "step"]
    assert len(steps) == 6
    assert steps[0][1] == pytest.approx(0.1) and steps[-1][1] == pytest.approx(0.1 / 6)
    # loss scales within each optimizer step sum to 1 (mean over the accumulated examples)
    group, sums = [], []
    for c in model.calls:
        if c[0] == "acc":
            group.append(c[2])
        else:
            sums.append(sum(group))
            group = []
    assert sums == pytest.approx([1.0] * 6)


def test_logging_cadence_and_eval_each_epoch():
    feats, targets = _features(32)
    logs = []
    cfg = TrainingConfig(epochs=3, batch_size=8, log_interval=2)
    fit(Recorder(), feats, targets, cfg, monitor=ACCURACY, evaluate=lambda: {"accuracy": 0.5, "loss": 1.0},
        log=lambda m, stage, step, epoch: logs.append((stage, step)))
    assert [s for s in logs if s[0] == "train"] == [("train", k) for k in (2, 4, 6, 8, 10, 12)]
    assert [s for s in logs if s[0] == "eval"] == [("eval", 4), ("eval", 8), ("eval", 12)]


def test_early_stopping_stops_and_restores_the_best_weights():
    feats, targets = _features(16)
    scores = iter([0.5, 0.8, 0.7, 0.75, 0.9])
    model = Recorder()
    cfg = TrainingConfig(epochs=5, batch_size=8, early_stopping=EarlyStoppingConfig(patience=2))
    result = fit(model, feats, targets, cfg, monitor=ACCURACY, evaluate=lambda: {"accuracy": next(scores)}, log=lambda *a: None)
    assert result.stopped_early and result.steps == 8  # stopped after epoch 4
    assert result.best_metrics == {"accuracy": 0.8}
    assert model.weights == 4  # the snapshot taken after epoch 2


def test_without_restore_best_the_last_weights_and_metrics_are_kept():
    feats, targets = _features(16)
    scores = iter([0.5, 0.8, 0.7])
    model = Recorder()
    cfg = TrainingConfig(epochs=3, batch_size=8, restore_best=False)
    result = fit(model, feats, targets, cfg, monitor=ACCURACY, evaluate=lambda: {"accuracy": next(scores)}, log=lambda *a: None)
    assert model.weights == 6 and result.final_metrics == {"accuracy": 0.7} and result.best_metrics == {"accuracy": 0.8}


def test_best_weights_are_restored_by_default():
    feats, targets = _features(16)
    scores = iter([0.5, 0.8, 0.7])
    model = Recorder()
    result = fit(model, feats, targets, TrainingConfig(epochs=3, batch_size=8), 
                 monitor=ACCURACY, evaluate=lambda: {"accuracy": next(scores)}, log=lambda *a: None)
    assert model.weights == 4 and result.final_metrics == {"accuracy": 0.8} and not result.stopped_early


def test_training_always_ends_with_an_evaluation():
    feats, targets = _features(40)  # 5 steps per epoch, evaluated every 3 steps
    evals = []
    fit(Recorder(), feats, targets, TrainingConfig(epochs=2, batch_size=8, eval_interval=3), 
        monitor=ACCURACY, evaluate=lambda: {"accuracy": 0.5}, log=lambda m, stage, step, epoch: evals.append(step) if stage == "eval" else None)
    assert evals == [3, 6, 9, 10]


def test_loss_is_minimised_when_monitored():
    feats, targets = _features(8)
    losses = iter([1.0, 0.5, 0.6])
    cfg = TrainingConfig(epochs=3, batch_size=8, early_stopping=EarlyStoppingConfig(patience=1, metric="loss"))
    result = fit(Recorder(), feats, targets, cfg, monitor=Monitor("loss"), evaluate=lambda: {"loss": next(losses)},
                 log=lambda *a: None)
    assert result.best_metrics == {"loss": 0.5} and result.stopped_early


def test_monitor_metric_is_checked_before_training():
    bad = TrainingConfig(early_stopping=EarlyStoppingConfig(patience=1, metric="acuracy"))
    with pytest.raises(SpecError, match="early_stopping.metric is 'acuracy'; for this task use one of: accuracy"):
        monitor_metric(bad, SINGLE_LABEL_MONITORS, ("loss",), True)
    with pytest.raises(SpecError, match="early stopping needs validation data"):
        monitor_metric(TrainingConfig(early_stopping=EarlyStoppingConfig(patience=1)), SINGLE_LABEL_MONITORS, ("loss",), False)
    assert monitor_metric(TrainingConfig(), SINGLE_LABEL_MONITORS, ("loss",), True) == ACCURACY
    loss = TrainingConfig(early_stopping=EarlyStoppingConfig(metric="loss"))
    assert monitor_metric(loss, SINGLE_LABEL_MONITORS, ("loss",), True) == Monitor("loss", minimize=True)
