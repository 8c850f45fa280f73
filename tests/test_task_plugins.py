"""Tasks are plugins: the built-in ones come from the ``bertbridge.tasks`` entry-point group, and a
third-party task installed the same way trains, saves, loads, evaluates and serves end to end on a tiny
model with no change to bertbridge."""

import importlib.metadata
import json
import sys
import textwrap

import pytest

import bertbridge
from bertbridge.core.errors import SpecError, UnknownTaskError
from bertbridge.core.plugins import registry
from conftest import FILLER

NEGATION_PLUGIN = '''
"""A third-party task: does the sentence contain a negation? Plain-text files, one sentence a line."""

import numpy as np

from bertbridge.core.backend import ModelSetup
from bertbridge.core.errors import DataError
from bertbridge.core.hookspecs import hookimpl
from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.serving.protocol import RequestError
from bertbridge.core.task import Task, TaskData
from bertbridge.core.tasks.saving import save_model_folder
from bertbridge.core.text.batching import collate, eval_batches

LABELS = ("plain", "negated")


class Lines:
    def __init__(self, path, encoder, max_length):
        with open(path, encoding="utf-8") as fh:
            self.texts = [line.strip() for line in fh if line.strip()]
        if not self.texts:
            raise DataError(f"{path}: no sentences; write one sentence per line.")
        self.path = str(path)
        self.features = encoder.encode(self.texts, max_length=max_length)
        self.targets = np.array([int("not" in t.split()) for t in self.texts], dtype=np.int64)


class NegationDetector:
    def __init__(self, model, encoder, manifest, batch_size):
        self.model, self.encoder, self.manifest, self.batch_size, self.path = model, encoder, manifest, batch_size, None

    @property
    def metrics(self):
        return dict(self.manifest.metrics)

    def _logits(self, features):
        out = np.zeros((len(features), 2), np.float32)
        for index in eval_batches(features.lengths, self.batch_size):
            out[index] = self.model.logits(collate(features, index, pad_id=self.encoder.pad_id))
        return out

    def predict(self, inputs):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        logits = self._logits(self.encoder.encode(texts, max_length=self.manifest.max_seq_length))
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        return [{"negated": bool(p[1] > 0.5), "score": float(p.max())} for p in probs]

    def evaluate_split(self, split, *, show_progress=True):
        logits = self._logits(split.features).astype(np.float64)
        log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return {"accuracy": float((logits.argmax(1) == split.targets).mean()),
                "loss": float(-log_probs[np.arange(len(split.targets)), split.targets].mean())}

    def evaluate(self, path):
        return self.evaluate_split(Lines(path, self.encoder, self.manifest.max_seq_length))

    def save(self, directory, *, metrics=None):
        return save_model_folder(self, directory, metrics)

    def normalize_request(self, items):
        if not all(isinstance(x, str) for x in items):
            raise RequestError(400, "send sentences as strings.")
        return items


class NegationTask(Task):
    name = "negation"
    summary = "does a sentence contain a negation (toy third-party task)"
    train_hint = "a text file with one sentence per line"

    def monitors(self, spec):
        return ("accuracy", "loss")

    def read_data(self, spec, encoder, backend):
        n = spec.training.max_seq_length
        manifest = Manifest(task=self.name, labels=LABELS, backend=backend, max_seq_length=n,
                            lowercase=encoder.lowercase, base_model=spec.model.name)
        setup = ModelSetup(num_labels=2, multi_label=False, id2label=dict(enumerate(LABELS)), seed=spec.training.seed)
        splits = [Lines(p, encoder, n) if p else None for p in (spec.data.train, spec.data.validation, spec.data.test)]
        return TaskData(manifest, setup, *splits)

    def model_setup(self, manifest):
        return ModelSetup(num_labels=2, multi_label=False, id2label=dict(enumerate(LABELS)), seed=0)

    def predictor(self, model, encoder, manifest, *, batch_size):
        return NegationDetector(model, encoder, manifest, batch_size)


@hookimpl
def bertbridge_register_tasks(registry):
    registry.add(NegationTask())
'''


def _install(root, dist: str, module: str, body: str, entry: str) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bertbridge.tasks]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(body))


@pytest.fixture()
def negation_plugin(tmp_path, monkeypatch):
    plugins = tmp_path / "site"
    plugins.mkdir()
    _install(plugins, "bertbridge_negation", "bb_negation_task", NEGATION_PLUGIN, "negation")
    _install(plugins, "bertbridge_brokentask", "bb_broken_task", "raise RuntimeError('no luck')\n", "broken_task")
    monkeypatch.syspath_prepend(str(plugins))
    registry.reset()
    yield
    for module in ("bb_negation_task", "bb_broken_task"):
        sys.modules.pop(module, None)


def _sentences(path, n: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(3, 8))
        if i % 2:
            words.insert(rng.randint(0, len(words)), "not")
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_builtin_tasks_come_from_the_entry_point_group():
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=registry.TASK_ENTRY_POINT_GROUP)}
    assert eps["text_classification"] == "bertbridge.core.tasks.classification.plugin"
    assert eps["question_answering"] == "bertbridge.core.tasks.qa.plugin"
    assert registry.tasks().names() == ["question_answering", "text_classification"]
    assert registry.tasks().get("question_answering").head == "span"


def test_unknown_task_lists_the_registered_ones():
    with pytest.raises(UnknownTaskError, match=r"invalid task type 'question_answer'; available: question_answering, "
                                               r"text_classification\. Did you mean 'question_answering'\?"):
        bertbridge.load_spec({"task": {"type": "question_answer"}})
    assert issubclass(UnknownTaskError, SpecError)


def test_a_third_party_task_trains_saves_loads_and_serves(negation_plugin, tiny_model_dir, tmp_path, capsys):
    from bertbridge.core.cli import main
    from bertbridge.core.serving import handlers

    tasks = registry.tasks()
    assert "negation" in tasks.names() and [b.name for b in tasks.broken] == ["broken_task"]
    spec = {
        "task": {"type": "negation"},
        "data": {"train": _sentences(tmp_path / "train.txt", 64, 1), "validation": _sentences(tmp_path / "dev.txt", 32, 2),
                 "test": _sentences(tmp_path / "test.txt", 16, 3)},
        "model": {"name": str(tiny_model_dir)},
        "training": {"epochs": 10, "batch_size": 8, "learning_rate": 2e-3, "max_seq_length": 16, "seed": 7},
        "output_dir": str(tmp_path / "out"),
    }
    detector = bertbridge.train(spec, backend="pytorch")
    assert type(detector).__name__ == "NegationDetector"
    assert detector.metrics["accuracy"] >= 0.9 and detector.metrics["test_accuracy"] >= 0.9  # "not" is easy to spot
    assert detector.training_result.history[0]["loss"] > detector.training_result.history[-1]["loss"]
    manifest = json.loads((tmp_path / "out" / "bertbridge.json").read_text())
    assert manifest["task"] == "negation" and manifest["backend"] == "pytorch"

    loaded = bertbridge.load(tmp_path / "out")
    sentences = ["the film was not good", "the film was good"]
    assert loaded.predict(sentences) == detector.predict(sentences)
    assert [r["negated"] for r in loaded.predict(sentences)] == [True, False]

    served = handlers.predict_fn(handlers.input_fn(json.dumps(sentences), "application/json"), handlers.model_fn(str(tmp_path / "out")))
    assert [r["negated"] for r in served] == [True, False]

    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert "negation" in listing and "bb_broken_task failed to load: RuntimeError: no luck" in listing
    assert main(["predict", str(tmp_path / "out"), "--text", "it was not fine"]) == 0
    assert json.loads(capsys.readouterr().out)["negated"] is True
    assert main(["evaluate", str(tmp_path / "out"), spec["data"]["test"], "--predictions-out", "p.json"]) == 2
    assert "--predictions-out is not available for negation models" in capsys.readouterr().err
    with pytest.raises(bertbridge.BertbridgeError, match=r"a negation model; the export formats serve question_answering, text_classification"):
        bertbridge.export(tmp_path / "out", "onnx", tmp_path / "onnx")  # a task that does not say exportable


def test_a_backend_without_the_tasks_head_refuses_it(negation_plugin):
    from bertbridge.core.errors import NotSupportedError

    from bertbridge.core.backend import Backend

    class SpanOnly(Backend):  # builds the QA head only
        name, extra, requires, distributions = "span_only", "span_only", (), ()
        tasks, heads = ("question_answering",), ("span",)

    backend = SpanOnly()
    assert backend.supports("question_answering", "span") and not backend.supports("negation", "sequence")
    with pytest.raises(NotSupportedError, match="backend 'span_only' cannot do 'negation'"):
        backend.ensure_supports("negation", registry.tasks().get("negation").head)


def test_one_module_may_serve_both_entry_point_groups(tmp_path, monkeypatch):
    """A backend package that also adds a task lists its plugin module under both groups."""
    info = tmp_path / "bertbridge_both-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bertbridge_both\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bertbridge.backends]\nboth = bb_both\n\n[bertbridge.tasks]\nboth_task = bb_both\n")
    (tmp_path / "bb_both.py").write_text(textwrap.dedent('''
        from bertbridge.core.backend import Backend
        from bertbridge.core.hookspecs import hookimpl
        from bertbridge.core.task import Task


        class BothBackend(Backend):
            name, extra, requires, distributions, heads = "both", "both", (), (), ("sequence",)


        class BothTask(Task):
            name = "both_task"
            monitors = read_data = model_setup = predictor = lambda self, *a, **k: None


        @hookimpl
        def bertbridge_register_backends(registry):
            registry.add(BothBackend())


        @hookimpl
        def bertbridge_register_tasks(registry):
            registry.add(BothTask())
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset()
    try:
        assert "both_task" in registry.tasks().names() and registry.tasks().broken == []
        assert "both" in registry.backends().names() and registry.backends().broken == []
        assert registry.backends().get("both").supports("both_task", registry.tasks().get("both_task").head)
    finally:
        sys.modules.pop("bb_both", None)
