"""The MXNet (GluonNLP) backend, run in the MXNet environment (make mxnet-env).

The contract every backend meets (train, save, load, cross-backend logits, AdamW steps as PyTorch, ...)
is the conformance suite, run here by test_mxnet_conformance.py; tests/test_mxnet_parity.py drives this
environment from the main one (CLI forwarding, serving, run-local).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

mxnet_model = pytest.importorskip("bertbridge.backends.mxnet.model")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.backends.mxnet.bert import BertClassifier  # noqa: E402
from bertbridge.core.backend import ModelSetup  # noqa: E402
from bertbridge.core.io import checkpoints  # noqa: E402
from bertbridge.core.io.weights import init_head, load_state, read_config  # noqa: E402
from bertbridge.core.plugins.registry import backends  # noqa: E402

TEXTS = ["the film was good", "the food was awful", "a very dull plot", "happy and charming actors"]


def _setup(n=2, seed=7, **kw):
    return ModelSetup(num_labels=n, multi_label=False, id2label={i: str(i) for i in range(n)}, seed=seed, **kw)


def test_every_weight_maps_name_for_name_and_back(numpy_model_dir):
    config, _ = read_config(numpy_model_dir)
    state = init_head(load_state(numpy_model_dir), config, 3, 0)
    net = BertClassifier(config, 3)
    assert set(net.structural_params()) == {net.gluon_name(k) for k in state}
    assert all(net.hf_name(net.gluon_name(k)) == k for k in state)
    net.load_hf(state, mxnet_model.mx.cpu())
    back = net.hf_state()
    assert back.keys() == state.keys() and all(np.array_equal(back[k], state[k]) for k in state)


def test_interrupted_training_resumes_to_the_same_model(numpy_model_dir, toy_data, tmp_path, monkeypatch):
    folder = tmp_path / "dropout"
    shutil.copytree(numpy_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.1}))
    common = dict(epochs=3, checkpoint_interval=5)
    straight = bertbridge.train(tiny_spec(folder, toy_data, tmp_path / "straight", checkpoint_dir=str(tmp_path / "ck1"), **common), backend="mxnet")
    spec = tiny_spec(folder, toy_data, tmp_path / "resumed", checkpoint_dir=str(tmp_path / "ck2"), **common)
    cls, calls = mxnet_model.MXClassifier, {"n": 0}
    real_step = cls.step

    def dying_step(self, lr):
        calls["n"] += 1
        if calls["n"] == 23:
            raise KeyboardInterrupt
        real_step(self, lr)

    monkeypatch.setattr(cls, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        bertbridge.train(spec, backend="mxnet")
    monkeypatch.setattr(cls, "step", real_step)
    assert checkpoints.latest(tmp_path / "ck2").name == "checkpoint-20"
    resumed = bertbridge.train(spec, backend="mxnet")
    assert resumed.training_result.steps == straight.training_result.steps == 36
    np.testing.assert_allclose(resumed.predict_proba(TEXTS), straight.predict_proba(TEXTS), atol=1e-6)


def test_symbol_export_loads_in_plain_mxnet_and_matches(numpy_model_dir, toy_data, tmp_path):
    from bertbridge.backends.mxnet.export import load_symbol

    clf = bertbridge.train(tiny_spec(numpy_model_dir, toy_data, tmp_path / "m", epochs=2), backend="mxnet")
    out = bertbridge.export(clf.path, "mxnet-symbol", tmp_path / "sym")
    assert out.name == "model-symbol.json" and (tmp_path / "sym" / "model-0000.params").is_file()
    net = load_symbol(tmp_path / "sym")
    enc = clf.encoder.encode(TEXTS, max_length=32)
    from bertbridge.core.text.batching import collate

    batch = collate(enc, np.arange(len(TEXTS)))
    mx = mxnet_model.mx
    got = net(mx.nd.array(batch["input_ids"]), mx.nd.array(batch["token_type_ids"]), mx.nd.array(batch["attention_mask"].sum(1))).asnumpy()
    probs = np.exp(got) / np.exp(got).sum(1, keepdims=True)
    np.testing.assert_allclose(probs, clf.predict_proba(TEXTS), atol=1e-5)


def test_sagemaker_serving_functions_answer_from_an_mxnet_model(numpy_model_dir, toy_data, tmp_path):
    from bertbridge.core.serving import handlers

    clf = bertbridge.train(tiny_spec(numpy_model_dir, toy_data, tmp_path / "m", epochs=2), backend="mxnet")
    model = handlers.model_fn(str(clf.path))
    data = handlers.input_fn(json.dumps({"inputs": TEXTS[:2]}), "application/json; charset=utf-8")
    body, content_type = handlers.output_fn(handlers.predict_fn(data, model), "application/json")
    answer = json.loads(body)
    assert content_type.startswith("application/json")
    assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in clf.predict(TEXTS[:2])]


def test_backend_reports_itself_and_its_exports():
    status = {s.name: s for s in bertbridge.list_backends()}["mxnet"]
    assert status.available and status.tasks == ("text_classification", "question_answering")
    assert "mxnet-symbol" in backends().get("mxnet").exports and backends().get("mxnet").debugger


def test_mxnet_runs_import_no_other_framework(numpy_model_dir, tmp_path):
    import subprocess
    import sys

    data = {"train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(16)))}
    spec = json.dumps(tiny_spec(numpy_model_dir, data, tmp_path / "out", epochs=1))
    code = f"""
import json, sys, bertbridge
clf = bertbridge.train(json.loads({spec!r}), backend="mxnet")
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {{"torch", "transformers", "tensorflow"}})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
