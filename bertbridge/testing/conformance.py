"""The contract every bertbridge backend meets, as a pytest class that a backend's tests subclass.

A backend package (bertbridge's own, or a third party's) runs the whole suite with::

    # tests/test_conformance.py
    from bertbridge.testing import BackendConformance

    class TestJax(BackendConformance):
        backend = "jax"          # the name its plugin registers

and ``python -m pytest tests/test_conformance.py``. Everything the tests need is made here, at
test time, with numpy, safetensors and tokenizers only: a tiny random BERT folder, toy data
sets, reference artifacts. Nothing is downloaded. A backend whose framework is not installed is
skipped (the reason names the missing modules).

What is checked, for ``text_classification`` and (when the backend lists it in ``Backend.tasks``)
``question_answering``:

* training learns and writes the shared artifact (``config.json`` + ``model.safetensors`` under
  Hugging Face names, tokenizer files, ``bertbridge.json``); loading it gives the same predictions;
* training is deterministic, gradient accumulation matches a bigger batch, the seed chooses the
  head; multi-label and sentence pairs train; mixed precision trains or is refused with the fix;
* cross-backend logits: an artifact this backend saves gives the same logits (within
  ``logits_atol``) when opened by every other backend that can open it (in this process, or in
  another environment named by ``BERTBRIDGE_<BACKEND>_PYTHON`` or :attr:`interpreters`) and by
  a numpy reference implementation (:mod:`bertbridge.testing.reference`); an artifact written
  elsewhere gives this backend the reference's logits; so does a real pretrained checkpoint (the
  ``minilm`` alias, when installed) saved by this backend;
* optimizer steps (AdamW, decay, clipping) give the same model as :attr:`reference_trainer`;
* every architecture the backend lists in ``Backend.architectures`` (DistilBERT, RoBERTa, XLM-R beside
  BERT) gives the reference's logits for both heads, from a folder under that architecture's own names
  with a real tokenizer of its kind; one it does not list is refused with a clear error;
* a question-answering spec runs as a local SageMaker job (``run_local``) whose ``model.tar.gz``
  answers through the serving functions exactly like the job's model folder.

Class attributes tune the contract where a backend legitimately differs (see below). Each test
class gets its own models (class-scoped fixtures), so a subclass per backend costs one training
of each kind.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import ClassVar, Mapping, Optional

import numpy as np
import pytest

import bertbridge
from bertbridge.core.backend import ModelSetup, TrainableModel
from bertbridge.core.errors import NotSupportedError
from bertbridge.core.io.weights import fresh_head, load_state, read_config
from bertbridge.core.plugins.registry import backends, models
from bertbridge.testing import reference, tiny
from bertbridge.testing.readers import BackendReader, ForwardedReader, Reader, ReferenceReader, interpreter_variable, run_backend

TEXTS = ["the film was good", "a dull and boring plot", "it is really lovely", "ugly"]
EXPECTED = ["positive", "negative", "positive", "negative"]
MORE_TEXTS = TEXTS + ["the food was not bad , really", "the film was superb", "a dreadful story"]
QUESTIONS = ["what is good ?", "what was dull ?", "who was charming ?", "is it fine ?"]
CONTEXTS = [
    "the film was good and the actors were charming .",
    "a very dull plot and a sad story",
    " ".join(["happy and charming actors and a lovely story , but the plot was quite boring ."] * 3),
    "the book is fine",
]
SPAN_LABELS = {0: "start", 1: "end"}


def _installed(distribution: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def setup_of(folder: Path) -> ModelSetup:
    """The :class:`ModelSetup` that opens a saved model folder, from its ``bertbridge.json``."""
    manifest = json.loads((Path(folder) / "bertbridge.json").read_text(encoding="utf-8"))
    if manifest["task"] == "question_answering":
        return ModelSetup(num_labels=2, multi_label=False, id2label=SPAN_LABELS, seed=0, head="span")
    labels = manifest["labels"]
    return ModelSetup(num_labels=len(labels), multi_label=bool(manifest.get("multi_label")), id2label=dict(enumerate(labels)), seed=0)


class BackendConformance:
    """Subclass with ``backend = "<name>"`` (a class named ``Test...``) to run the contract on a backend."""

    backend: ClassVar[str] = ""
    """Registry name of the backend under test."""
    logits_atol: ClassVar[float] = 1e-4
    """Largest |difference| of logits between two implementations on the same artifact and batch."""
    reload_atol: ClassVar[float] = 0.0
    """Largest |difference| of probabilities/logits before and after save + load on this backend (0: identical)."""
    min_accuracy: ClassVar[float] = 0.9
    """Validation accuracy the tiny model must reach on the toy sentiment data (it separates them fully)."""
    mixed_precision: ClassVar[bool] = True
    """False: ``training.mixed_precision: true`` must be refused up front with NotSupportedError naming the fix."""
    reference_trainer: ClassVar[Optional[str]] = "pytorch"
    """Backend whose AdamW steps this one must reproduce (skipped when unreachable, or None)."""
    pretrained: ClassVar[Optional[str]] = "minilm"
    """Model alias of a real pretrained BERT checked against the numpy reference too (skipped when not installed, or None)."""
    interpreters: ClassVar[Mapping[str, str]] = {}
    """Backend name -> Python of another environment holding it, for backends not importable here
    (``BERTBRIDGE_<BACKEND>_PYTHON`` in the environment wins)."""

    # -- fixtures: everything is made here, once per class --------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def subject(cls):
        """The backend under test; skips when its framework is not installed here."""
        if not cls.backend:
            pytest.fail(f"{cls.__name__} must set backend = '<registry name>'")
        backend = backends().get(cls.backend)
        missing = [m for m in backend.requires if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"backend {backend.name!r} needs {', '.join(missing)}, which is not installed in this Python")
        if not backend.trains:
            pytest.skip(f"backend {backend.name!r} cannot train (it runs exported models only)")
        return backend

    @pytest.fixture(scope="class")
    @classmethod
    def workdir(cls, subject, tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp(f"conformance-{subject.name}")

    @pytest.fixture(scope="class")
    @classmethod
    def base_model(cls, workdir) -> Path:
        """A random 2-layer BERT (hidden 32) written with numpy: ``BertModel`` names, tokenizer files."""
        return tiny.write_random_bert(workdir / "base")

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, workdir) -> dict:
        """Keyword sentiment: train.tsv (96 rows), dev.tsv (32 rows)."""
        folder = workdir / "data"
        folder.mkdir()
        return tiny.toy_data(folder)

    @pytest.fixture(scope="class")
    @classmethod
    def classifier(cls, subject, base_model, data, workdir):
        """The tiny model fine-tuned on the toy data with this backend (12 epochs), saved."""
        return bertbridge.train(tiny.tiny_spec(base_model, data, workdir / "model"), backend=subject.name)

    @pytest.fixture(scope="class")
    @classmethod
    def qa_data(cls, workdir) -> dict:
        train, dev = workdir / "qa-train.json", workdir / "qa-dev.json"
        tiny.toy_squad(train, 32, seed=1)
        tiny.toy_squad(dev, 8, seed=2)
        return {"train": str(train), "validation": str(dev)}

    @pytest.fixture(scope="class")
    @classmethod
    def question_answerer(cls, subject, base_model, qa_data, workdir):
        """The tiny model trained a few steps for question answering (SQuAD toy data), saved."""
        if "question_answering" not in subject.tasks:
            pytest.skip(f"backend {subject.name!r} does not list question_answering in Backend.tasks")
        return bertbridge.train(tiny.qa_spec(base_model, qa_data, workdir / "qa"), backend=subject.name)

    # -- helpers ----------------------------------------------------------------------------
    def readers(self, task: str) -> list[Reader]:
        """Everything besides this backend that opens ``task`` artifacts: the numpy reference, the other
        training backends importable here, and those reachable in another environment."""
        found: list[Reader] = [ReferenceReader()]
        for other in backends():
            if other.name == self.backend or not other.trains or task not in other.tasks:
                continue
            if other.status().available:
                found.append(BackendReader(other.name))
            else:
                python = self.interpreter(other.name)
                if python:
                    found.append(ForwardedReader(other.name, python))
        return found

    def interpreter(self, name: str) -> Optional[str]:
        """The Python of another environment holding backend ``name``, or None."""
        variable = interpreter_variable(name)
        if os.environ.get(variable):
            if not Path(os.environ[variable]).is_file():
                pytest.fail(f"{variable}={os.environ[variable]} is not a Python interpreter")
            return os.environ[variable]
        python = self.interpreters.get(name)
        return python if python and Path(python).is_file() else None

    def assert_same_logits_everywhere(self, folder: Path, setup: ModelSetup, batch, want: np.ndarray, task: str) -> None:
        """Every reader of ``task`` gives ``want`` (within :attr:`logits_atol`) for ``batch`` on ``folder``."""
        diffs = {}
        for reader in self.readers(task):
            got = reader.logits(folder, setup, batch)
            assert got.shape == want.shape, f"{reader}: logits of shape {got.shape}, {self.backend} gives {want.shape}"
            diffs[repr(reader)] = float(np.abs(got - want).max())
        print(f"{self.backend} artifact {folder.name}: max |logits difference| by reader: {diffs}")
        bad = {k: v for k, v in diffs.items() if not v <= self.logits_atol}
        assert not bad, f"logits differ from {self.backend}'s by more than {self.logits_atol}: {bad}"

    # -- text classification ----------------------------------------------------------------
    def test_trains_and_writes_the_shared_artifact(self, subject, classifier, data, workdir):
        assert classifier.metrics["accuracy"] >= self.min_accuracy
        folder = workdir / "model"
        assert classifier.path == folder.resolve()
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "bertbridge.json"} <= names
        assert not any(n.endswith((".bin", ".pt", ".pkl", ".h5", ".params")) for n in names)  # weights: safetensors only
        assert not [p for p in workdir.iterdir() if p.name.startswith(".model.")]  # no staging leftovers
        manifest = json.loads((folder / "bertbridge.json").read_text())
        assert manifest["task"] == "text_classification" and manifest["backend"] == subject.name
        assert manifest["labels"] == ["negative", "positive"] and manifest["lowercase"] is True
        assert manifest["max_seq_length"] == 32 and manifest["multi_label"] is False
        expected = {"bertbridge", "tokenizers"} | {d for d in subject.distributions if _installed(d)}
        expected |= {"transformers"} & set(subject.requires)  # a framework half that is a distribution of its own
        assert expected <= set(manifest["versions"]), manifest["versions"]
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["BertForSequenceClassification"]
        assert config["id2label"] == {"0": "negative", "1": "positive"}
        reference.check_layout(folder, "sequence")
        assert bertbridge.evaluate(folder, data["validation"])["accuracy"] == pytest.approx(classifier.metrics["accuracy"])

    def test_reloaded_model_predicts_the_same(self, subject, classifier, data):
        loaded = bertbridge.load(classifier.path)
        assert loaded.backend == subject.name
        before, after = classifier.predict_proba(MORE_TEXTS), loaded.predict_proba(MORE_TEXTS)
        if self.reload_atol:
            np.testing.assert_allclose(after, before, rtol=0, atol=self.reload_atol)
        else:
            assert np.array_equal(before, after)
        assert loaded.evaluate(data["validation"])["accuracy"] == pytest.approx(classifier.metrics["accuracy"])
        assert loaded.predict(TEXTS[0])[0]["label"] == "positive"
        result = loaded.predict(TEXTS)
        assert [r["label"] for r in result] == EXPECTED
        assert [r["label"] for r in loaded.predict(["the film was superb", "a dreadful story"])] == ["positive", "negative"]
        assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in result)
        assert result[1]["score"] == pytest.approx(result[1]["probabilities"]["negative"])

    def test_same_seed_same_model_and_accumulation_matches_a_bigger_batch(self, subject, base_model, data, tmp_path):
        common = dict(epochs=1, group_by_length=False, max_grad_norm=0.0, learning_rate=1e-3)

        def train(name, **training):
            return bertbridge.train(tiny.tiny_spec(base_model, data, tmp_path / name, **{**common, **training}), backend=subject.name)

        a, b = train("a", batch_size=16), train("b", batch_size=16)
        acc = train("acc", batch_size=8, gradient_accumulation_steps=2)
        assert np.array_equal(a.predict_proba(TEXTS), b.predict_proba(TEXTS))
        np.testing.assert_allclose(a.predict_proba(TEXTS), acc.predict_proba(TEXTS), atol=1e-4)
        assert a.training_result.steps == acc.training_result.steps == 6

    def test_the_seed_chooses_the_head(self, subject, base_model):
        """Same seed, same fresh model; another seed, another head (so another trained model)."""
        batch = reference.encode(base_model, TEXTS)

        def fresh(seed):
            setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "negative", 1: "positive"}, seed=seed)
            return subject.create_model(base_model, setup).logits(batch)

        first = fresh(7)
        assert np.array_equal(fresh(7), first)
        assert not np.allclose(fresh(8), first)

    @pytest.mark.parametrize("head, pooler", [("sequence", True), ("sequence", False), ("span", True)])
    def test_a_fresh_head_is_the_same_on_every_backend(self, subject, base_model, head, pooler, tmp_path):
        """One spec and seed start from the same weights on every backend: the fresh head is core's
        ``fresh_head(seed)``, and so is the first dense layer when the checkpoint has none."""
        folder = base_model if pooler else _without_pooler(base_model, tmp_path / "no-pooler")
        setup = ModelSetup(num_labels=3, multi_label=False, id2label={0: "a", 1: "b", 2: "c"}, seed=11, head=head)
        (tmp_path / "fresh").mkdir()
        subject.create_model(folder, setup).save(tmp_path / "fresh")
        config, _ = read_config(folder)
        want = fresh_head(config, 3, 11, head, has_pooler=pooler)
        got = load_state(tmp_path / "fresh")
        if pooler and head == "sequence":  # the checkpoint's own first dense layer is kept
            want["bert.pooler.dense.weight"] = load_state(folder)["bert.pooler.dense.weight"]
        assert set(want) <= set(got), f"the saved model lacks {sorted(set(want) - set(got))}"
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-7, err_msg=name)

    def test_multi_label_with_sentence_pairs(self, subject, base_model, tmp_path):
        rows = [{"text": t, "other": "good film", "tags": [l] + (["film"] if "film" in t.split() else [])}
                for t, l in tiny.toy_sentences(96, 3)]
        train = tmp_path / "m.jsonl"
        train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        spec = tiny.tiny_spec(base_model, {"train": str(train), "validation": str(train)}, tmp_path / "ml")
        spec["task"] = {"multi_label": True, "threshold": 0.5}
        spec["data"].update({"label_column": "tags", "text_pair_column": "other", "labels": ["film", "negative", "positive"]})
        clf = bertbridge.train(spec, backend=subject.name)
        assert {"subset_accuracy", "micro_f1", "macro_f1", "hamming_loss"} <= set(clf.metrics)
        assert clf.metrics["micro_f1"] > 0.8
        assert clf.manifest.text_pair is True and clf.manifest.multi_label is True
        probs = clf.predict_proba([("the film was good", "good film"), ("bad plot", "good film")])
        assert probs.shape == (2, 3) and not np.allclose(probs.sum(axis=1), 1.0)  # sigmoid per label, not softmax
        out = bertbridge.load(clf.path).predict([("the film was good", "good film")])
        assert len(out) == 1 and set(out[0]) == {"labels", "probabilities"}
        assert "positive" in out[0]["labels"]
        assert set(out[0]["labels"]) == {k for k, p in out[0]["probabilities"].items() if p >= 0.5}
        with pytest.raises(bertbridge.BertbridgeError, match=r"input 0: this model classifies sentence pairs"):
            clf.predict(["single text"])

    def test_mixed_precision_trains_or_is_refused_with_the_fix(self, subject, base_model, data, tmp_path):
        spec = tiny.tiny_spec(base_model, data, tmp_path / "mixed", epochs=1, batch_size=16, mixed_precision=True)
        if not self.mixed_precision:
            with pytest.raises(NotSupportedError, match="mixed_precision: false"):
                bertbridge.train(spec, backend=subject.name)
            assert not (tmp_path / "mixed").exists()
            return
        clf = bertbridge.train(spec, backend=subject.name)
        assert np.isfinite(clf.predict_proba(TEXTS)).all()
        assert clf.training_result.steps == 6

    # -- cross-backend logits -----------------------------------------------------------------
    def test_saved_classifier_gives_the_same_logits_everywhere(self, subject, classifier):
        folder = classifier.path
        batch = reference.encode(folder, MORE_TEXTS, max_length=32)
        mine = run_backend(subject.name, str(folder), setup_of(folder), batch)
        self.assert_same_logits_everywhere(folder, setup_of(folder), batch, mine, "text_classification")

    def test_opens_a_classifier_written_elsewhere(self, subject, base_model, workdir):
        """An artifact written by the numpy reference (3 labels, random head with biases, sentence pairs)."""
        folder = reference.write_artifact(base_model, workdir / "written-elsewhere", labels=("a", "b", "c"))
        setup = ModelSetup(num_labels=3, multi_label=False, id2label={0: "a", 1: "b", 2: "c"}, seed=0)
        batch = reference.encode(folder, QUESTIONS, CONTEXTS)
        got = subject.load_model(folder, setup).logits(batch)
        assert got.dtype == np.float32 and got.shape == (len(QUESTIONS), 3)
        want = reference.logits(folder, batch)
        assert np.abs(got - want).max() <= self.logits_atol

    def test_pretrained_checkpoint_gives_the_reference_logits(self, subject, tmp_path):
        """A real pretrained BERT (6 layers, hidden 384) with a fresh head, saved by this backend, read by the
        numpy reference; one text longer than 100 tokens. (Other backends are compared on the tiny models.)"""
        if not self.pretrained:
            pytest.skip("no pretrained checkpoint configured (pretrained = None)")
        try:
            source = models().resolve(self.pretrained)
        except bertbridge.BertbridgeError as exc:
            pytest.skip(f"pretrained checkpoint {self.pretrained!r} is not installed: {exc}")
        setup = ModelSetup(num_labels=3, multi_label=False, id2label={0: "a", 1: "b", 2: "c"}, seed=1)
        folder = tmp_path / "pretrained"
        folder.mkdir()
        model = subject.create_model(source, setup)
        model.save(folder)
        long_text = " ".join(["An absolute joy from start to finish, with a few slow scenes."] * 12)
        batch = reference.encode(source, TEXTS + [long_text], max_length=128)
        assert batch["input_ids"].shape[1] > 100
        mine = model.logits(batch)
        diff = np.abs(mine - reference.logits(folder, batch)).max()  # the reference only: every pair then agrees within 2x
        print(f"{subject.name} on {self.pretrained}: max |logits - numpy reference| = {diff:.2e}")
        assert diff <= self.logits_atol

    def test_optimizer_steps_match_the_reference_trainer(self, subject, base_model, tmp_path):
        """Same start, same batch, two AdamW steps (decay, clipping, bias correction): same model."""
        other = self.reference_trainer
        if not other or other == subject.name:
            pytest.skip(f"{subject.name} is the reference trainer" if other else "no reference trainer configured")
        if backends().get(other).status().available:
            trainer: Reader = BackendReader(other)
        elif self.interpreter(other):
            trainer = ForwardedReader(other, self.interpreter(other))
        else:
            pytest.skip(f"reference trainer {other!r} is not installed here; set {interpreter_variable(other)} to the Python of its environment")
        folder = reference.write_artifact(base_model, tmp_path / "start", labels=("n", "p"), std=0.02)
        setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "n", 1: "p"}, seed=3, weight_decay=0.01, max_grad_norm=0.5)
        batch = reference.encode(folder, [t for t, _ in tiny.toy_sentences(8)], max_length=32, labels=np.array([0, 1] * 4))
        model = subject.load_model(folder, setup)
        if not isinstance(model, TrainableModel):
            pytest.skip(f"{subject.name}'s load_model returns an inference-only model")
        for lr in (1e-3, 5e-4):
            model.accumulate(batch, 1.0)
            model.step(lr)
        got = model.logits(batch)
        want = trainer.logits(folder, setup, batch, steps=(1e-3, 5e-4))
        assert np.abs(got - reference.logits(folder, batch)).max() > 1e-3  # the steps moved the model
        diff = np.abs(got - want).max()
        print(f"after two AdamW steps: max |{subject.name} - {trainer}| = {diff:.2e}")
        assert diff <= self.logits_atol

    # -- question answering (span head) --------------------------------------------------------
    def test_question_answering_trains_saves_and_reloads(self, subject, question_answerer, qa_data):
        qa = question_answerer
        folder = qa.path
        assert {"exact", "f1"} <= set(qa.metrics) and 0 <= qa.metrics["exact"] <= qa.metrics["f1"] <= 100
        history = qa.training_result.history
        assert history[-1]["loss"] < history[0]["loss"]
        manifest = json.loads((folder / "bertbridge.json").read_text())
        assert manifest["task"] == "question_answering" and manifest["backend"] == subject.name
        assert manifest["qa"]["doc_stride"] == 16 and manifest["qa"]["v2"] is False
        assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
        reference.check_layout(folder, "span")
        loaded = bertbridge.load(folder)
        pairs = list(zip(QUESTIONS, CONTEXTS))
        before, after = qa.predict(pairs), loaded.predict(pairs)
        assert [a["answer"] for a in after] == [b["answer"] for b in before]
        for a, b, context in zip(after, before, CONTEXTS):
            assert set(a) == {"answer", "score", "start", "end"} and context[a["start"]:a["end"]] == a["answer"]
            assert a["score"] == pytest.approx(b["score"], abs=max(self.reload_atol, 1e-12))
        batch = reference.encode(folder, QUESTIONS, CONTEXTS, max_length=48)
        logits = subject.load_model(folder, setup_of(folder)).logits(batch)
        assert logits.dtype == np.float32 and logits.shape == batch["input_ids"].shape + (2,)
        np.testing.assert_allclose(logits, qa.model.logits(batch), rtol=0, atol=self.reload_atol)
        metrics = loaded.evaluate(qa_data["validation"])
        assert metrics["exact"] == pytest.approx(qa.metrics["exact"]) and metrics["f1"] == pytest.approx(qa.metrics["f1"])

    def test_question_answering_runs_as_a_local_sagemaker_job(self, subject, base_model, qa_data, workdir):
        """``run-local``: the job trains, and its ``model.tar.gz``, unpacked as an endpoint unpacks
        it, answers through the serving functions exactly like the job's model folder."""
        import tarfile

        from bertbridge.core.serving import handlers

        if "question_answering" not in subject.tasks:
            pytest.skip(f"backend {subject.name!r} does not list question_answering in Backend.tasks")
        spec = workdir / "qa-job.json"
        spec.write_text(json.dumps(tiny.qa_spec(base_model, qa_data, workdir / "qa-job-unused")), encoding="utf-8")
        run = bertbridge.run_local(spec, backend=subject.name, base_dir=workdir / "qa-job", stream_output=False)
        assert run.returncode == 0 and run.failure is None, run.failure
        with tarfile.open(run.model_tar) as tar:
            tar.extractall(workdir / "qa-served", filter="data")
        model = handlers.model_fn(str(workdir / "qa-served"))
        body = json.dumps([{"question": q, "context": c} for q, c in zip(QUESTIONS, CONTEXTS)])
        out, _ = handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, "application/json"), model), "application/json")
        assert json.loads(out)["predictions"] == bertbridge.load(run.model_dir).predict(list(zip(QUESTIONS, CONTEXTS)))
        assert json.loads((run.model_dir / "bertbridge.json").read_text())["task"] == "question_answering"

    def test_saved_span_model_gives_the_same_logits_everywhere(self, subject, question_answerer):
        folder = question_answerer.path
        batch = reference.encode(folder, QUESTIONS, CONTEXTS, max_length=48)
        assert (batch["attention_mask"] == 0).any()  # padded positions are compared too
        mine = run_backend(subject.name, str(folder), setup_of(folder), batch)
        self.assert_same_logits_everywhere(folder, setup_of(folder), batch, mine, "question_answering")

    def test_opens_a_span_model_written_elsewhere(self, subject, base_model, workdir):
        if "question_answering" not in subject.tasks:
            pytest.skip(f"backend {subject.name!r} does not list question_answering in Backend.tasks")
        folder = reference.write_artifact(base_model, workdir / "span-written-elsewhere", head="span")
        setup = ModelSetup(num_labels=2, multi_label=False, id2label=SPAN_LABELS, seed=0, head="span")
        batch = reference.encode(folder, QUESTIONS, CONTEXTS, max_length=48)
        got = subject.load_model(folder, setup).logits(batch)
        assert got.dtype == np.float32 and got.shape == batch["input_ids"].shape + (2,)
        assert np.abs(got - reference.logits(folder, batch, "span")).max() <= self.logits_atol

    # -- the rest of the BERT family ------------------------------------------------------------
    @pytest.mark.parametrize("model_type", tuple(tiny.FAMILY))
    def test_each_listed_architecture_gives_the_reference_logits(self, subject, model_type, tmp_path):
        """Every architecture in ``Backend.architectures`` besides BERT (a random tiny folder with a real
        tokenizer of its kind, written with numpy under the architecture's own names) opens with the
        reference's logits, for each head the backend builds; one it does not list is refused clearly."""
        base = tiny.write_random_family(tmp_path / "base", model_type)
        if model_type not in subject.architectures:
            with pytest.raises(NotSupportedError, match=model_type):
                subject.load_model(reference.write_artifact(base, tmp_path / "refused"), setup_of_labels(3))
            return
        for head in [h for h in ("sequence", "span") if h in subject.heads]:
            folder = reference.write_artifact(base, tmp_path / head, head=head)
            setup = ModelSetup(num_labels=2, multi_label=False, id2label=SPAN_LABELS, seed=0, head="span") if head == "span" \
                else setup_of_labels(3)
            batch = reference.encode(folder, QUESTIONS, CONTEXTS, max_length=48)
            got = subject.load_model(folder, setup).logits(batch)
            diff = float(np.abs(got - reference.logits(folder, batch, head)).max())
            print(f"{subject.name} {model_type} {head}: max |logits - numpy reference| = {diff:.2e}")
            assert diff <= self.logits_atol


def setup_of_labels(n: int) -> ModelSetup:
    """A classifier's :class:`ModelSetup` for ``n`` labels named ``a``, ``b``, ..."""
    return ModelSetup(num_labels=n, multi_label=False, id2label={i: "abcdefgh"[i] for i in range(n)}, seed=0)


def _without_pooler(base: Path, folder: Path) -> Path:
    """A copy of the checkpoint folder ``base`` without its pooler tensors (like a bare encoder's)."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(base, folder)
    weights = load_file(str(base / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if "pooler." not in k}, str(folder / "model.safetensors"))
    return folder
