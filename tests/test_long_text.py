"""task.long_text: texts longer than max_seq_length classified in windows, trained on every window, combined
per text the same way in the API, predict --input, the SageMaker serving functions, bertbridge serve, other
backends, and exports (ONNX, the TF Serving handler); without it, a warning counts the cut texts."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, mx_python
from bertbridge.core.errors import DataError, SpecError
from bertbridge.core.tasks.classification.windows import aggregate, window_targets
from bertbridge.core.text.tokenize import TextEncoder

import bertbridge

LONG = {"stride": 4, "max_windows": 16, "aggregate": "mean"}


def long_review(label: str, rng: random.Random, sentences: int = 8) -> str:
    """Sentences of filler and one sentiment word each: the first two (about one 16-token window) carry the
    other label, the rest the review's. So the first window alone misleads, and the whole review does not."""
    other = "negative" if label == "positive" else "positive"
    labels = [other] * 2 + [label] * (sentences - 2)
    return " ".join(" ".join(rng.sample(FILLER, 4) + [rng.choice(POSITIVE if lab == "positive" else NEGATIVE)]) + " ."
                    for lab in labels)


def write_reviews(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    labels = ["positive", "negative"] * (n // 2)
    path.write_text("text\tlabel\n" + "".join(f"{long_review(lab, rng)}\t{lab}\n" for lab in labels), encoding="utf-8")
    return path


def _spec(model_dir, folder: Path, **task) -> dict:
    from conftest import tiny_spec

    data = {"train": str(write_reviews(folder / "train.tsv", 64, 1)), "validation": str(write_reviews(folder / "dev.tsv", 24, 2))}
    spec = tiny_spec(model_dir, data, folder / "model", max_seq_length=16, epochs=6)
    spec["task"] = task
    return spec


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    """The tiny BERT trained with long_text on PyTorch (64 reviews of about 50 tokens, 16-token windows)."""
    pytest.importorskip("torch")
    from bertbridge.testing import write_random_bert

    folder = tmp_path_factory.mktemp("long_text")
    return bertbridge.train(_spec(write_random_bert(folder / "base"), folder, long_text=LONG), backend="pytorch"), folder


def _reviews(n: int = 6) -> list[str]:
    rng = random.Random(9)
    return [long_review(lab, rng) for lab in ["positive", "negative"] * (n // 2)]


# -- windows and their combination ------------------------------------------------------------
def test_windows_cover_the_text_with_the_overlap_and_stop_at_max_windows(tokenizer_dir):
    encoder = TextEncoder.from_pretrained(tokenizer_dir)
    words = " ".join(FILLER[i % len(FILLER)] for i in range(40))  # 40 tokens
    features, doc = encoder.encode_windows([words, "good film", words], max_length=12, stride=3, max_windows=3)
    assert doc.tolist() == [0, 0, 0, 1, 2, 2, 2]
    first, second = (encoder.id_tokens(ids) for ids in features.input_ids[:2])
    assert len(first) == 12 and first[0] == "[CLS]" and first[-1] == "[SEP]" and second[0] == "[CLS]"
    assert first[-4:-1] == second[1:4]  # consecutive windows share `stride` tokens
    everything, doc = encoder.encode_windows([words], max_length=12, stride=3, max_windows=100)
    assert len(everything) == 6 and sum(len(ids) - 2 for ids in everything.input_ids) - 3 * 5 == 40  # 10 + 7 * 5 tokens: every one, overlaps aside
    with pytest.raises(SpecError, match="task.long_text.stride is 10, but a window of 12 tokens holds 10"):
        encoder.encode_windows([words], max_length=12, stride=10, max_windows=3)


def test_window_logits_combine_by_mean_max_or_first():
    logits = np.array([[1, 0], [3, -2], [0, 5], [2, 2]], dtype=np.float32)
    doc = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(aggregate(logits, doc, 2, "mean"), [[2, -1], [1, 3.5]])
    np.testing.assert_allclose(aggregate(logits, doc, 2, "max"), [[3, 0], [2, 5]])
    np.testing.assert_allclose(aggregate(logits, doc, 2, "first"), [[1, 0], [0, 5]])
    multi = np.array([[1, 0, 1], [0, 1, 0]])
    assert window_targets(multi, doc).tolist() == [[1, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0]]


# -- training and evaluation ------------------------------------------------------------------
def test_training_sees_every_window_and_metrics_count_texts(windowed):
    model, folder = windowed
    assert model.manifest.long_text == LONG
    assert model.metrics["train_texts"] == 64 and model.metrics["train_windows"] > 3 * 64  # each review spans several windows
    assert model.metrics["support_positive"] + model.metrics["support_negative"] == 24  # per review, not per window
    assert model.metrics["accuracy"] >= 0.9
    again = bertbridge.evaluate(model.path, folder / "dev.tsv")
    assert again["accuracy"] == pytest.approx(model.metrics["accuracy"]) and again["loss"] == pytest.approx(model.metrics["loss"], rel=1e-4)


def test_predictions_combine_the_windows_as_the_spec_says(windowed):
    model, _ = windowed
    texts = _reviews()
    features, doc = model.encoder.encode_windows(texts, max_length=16, stride=4, max_windows=16)
    window_logits = model.logits(features)
    expected = model.probabilities(np.stack([window_logits[doc == i].mean(axis=0) for i in range(len(texts))]))
    np.testing.assert_allclose(model.predict_proba(texts), expected, atol=1e-6)
    truncated = model.probabilities(model.logits(model.encode(texts))).argmax(axis=1)  # the misleading opening only
    assert (model.predict_proba(texts).argmax(axis=1) != truncated).sum() >= 4


def test_without_long_text_a_warning_counts_the_cut_texts(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    spec = _spec(tiny_model_dir, tmp_path)
    spec["training"]["epochs"] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bertbridge.train(spec, backend="pytorch")
    messages = [str(w.message) for w in caught if "max_seq_length=16" in str(w.message)]
    assert any(m.startswith(f"{tmp_path / 'train.tsv'}: 64 of 64 inputs are longer than max_seq_length=16 tokens") for m in messages)
    assert any("set task.long_text" in m for m in messages)


@pytest.mark.parametrize("change, message", [
    ({"data": {"text_pair_column": "pair"}}, "task.long_text windows single texts"),
    ({"task": {"type": "question_answering", "long_text": {}}}, "spec.task.long_text only applies to type 'text_classification'"),
    ({"task": {"long_text": {"aggregate": "median"}}}, r"long_text.aggregate is 'median'; it must be one of: mean, max, first"),
    ({"task": {"long_text": {"max_windows": 0}}}, "max_windows must be >= 1"),
])
def test_long_text_settings_that_cannot_work_are_refused(tiny_model_dir, tmp_path, change, message):
    spec = _spec(tiny_model_dir, tmp_path, long_text={})
    for section, values in change.items():
        spec[section] = {**spec.get(section, {}), **values}
    with pytest.raises(SpecError, match=message):
        bertbridge.load_spec(spec)


def test_tfrecord_shards_cannot_be_windowed(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    spec = _spec(tiny_model_dir, tmp_path)
    shards = tmp_path / "shards"
    bertbridge.export_tfrecord(spec, shards)
    spec["data"]["train"], spec["task"] = str(shards), {"long_text": {}}
    with pytest.raises(DataError, match="TFRecord shards hold texts already cut to max_seq_length"):
        bertbridge.train(spec, backend="pytorch")
    with pytest.raises(SpecError, match="task.long_text models train on their csv"):
        bertbridge.export_tfrecord(spec, tmp_path / "more")


# -- every serving path -----------------------------------------------------------------------
def test_predict_input_serving_functions_and_serve_answer_like_the_api(windowed, tmp_path):
    from bertbridge.core.serving import handlers
    from test_server import _start_server

    model, _ = windowed
    texts = _reviews()
    expected = model.predict_proba(texts)
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    exe = os.path.join(os.path.dirname(sys.executable), "bertbridge")
    subprocess.run([exe, "predict", str(model.path), "--input", str(source), "--output", str(tmp_path / "out.jsonl")], check=True,
                   capture_output=True, timeout=300)
    streamed = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    served = handlers.predict_fn(handlers.input_fn(json.dumps(texts), "application/json"), handlers.model_fn(str(model.path)))
    proc, port = _start_server(model.path)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(texts).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            over_http = json.loads(response.read())["predictions"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for rows in (streamed, served, over_http):
        got = np.array([[r["probabilities"][label] for label in model.labels] for r in rows])
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_other_backends_open_it_and_combine_the_same_windows(windowed):
    pytest.importorskip("tensorflow")
    model, _ = windowed
    texts = _reviews()
    on_tf = bertbridge.load(model.path, backend="tensorflow")
    np.testing.assert_allclose(on_tf.predict_proba(texts), model.predict_proba(texts), atol=1e-5)
    code = ("import json, sys, bertbridge; m = bertbridge.load(sys.argv[1], backend='mxnet'); "
            "print(json.dumps(m.predict_proba(json.loads(sys.argv[2])).tolist()))")
    run = subprocess.run([mx_python(), "-c", code, str(model.path), json.dumps(texts)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    np.testing.assert_allclose(json.loads(run.stdout.strip().splitlines()[-1]), model.predict_proba(texts), atol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_onnx_and_pt2_exports_combine_the_same_windows(windowed, tmp_path, fmt):
    pytest.importorskip("onnxruntime")
    model, _ = windowed
    texts = _reviews()
    exported = bertbridge.export(model.path, fmt, tmp_path / fmt)
    np.testing.assert_allclose(bertbridge.load(exported.parent).predict_proba(texts), model.predict_proba(texts), atol=1e-4)


def test_the_tf_serving_handler_combines_the_same_windows(windowed, tmp_path):
    pytest.importorskip("tensorflow")
    from test_qa_exports import run_tf_serving_handler

    model, _ = windowed
    texts = _reviews()
    version = bertbridge.export(model.path, "savedmodel", tmp_path / "export")
    code = tmp_path / "export" / "code"
    assert "bertbridge" in {p.name for p in code.iterdir()}  # the windowing handler, with the package it runs on
    result, requests = run_tf_serving_handler(version, code, texts, tmp_path)
    rows = result["ok"][0]["predictions"]
    got = np.array([[r["probabilities"][label] for label in model.labels] for r in rows])
    np.testing.assert_allclose(got, model.predict_proba(texts), atol=1e-4)
    assert requests >= 1


def test_reading_warns_only_about_what_it_drops(windowed):
    from bertbridge.core.tasks.classification.data import read_split

    model, folder = windowed
    read = dict(cfg=model.data_config(), encoder=model.encoder, label_map=model.label_map, max_length=16, multi_label=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_split(folder / "dev.tsv", long_text=LONG, **read)
        assert not caught  # every token read
        read_split(folder / "dev.tsv", long_text={**LONG, "max_windows": 2}, **read)
    assert [str(w.message) for w in caught] == [
        f"{folder / 'dev.tsv'}: 24 of 24 texts need more than max_windows=2 windows of 16 tokens; their ends were not "
        "read. Raise task.long_text.max_windows to read them."]


def test_older_bertbridge_refuses_a_windowed_model_and_a_damaged_manifest_is_named(windowed, tmp_path):
    from bertbridge.core.io.artifacts import FORMAT_VERSION, Manifest, copy_files

    model, _ = windowed
    saved = json.loads((model.path / "bertbridge.json").read_text())
    assert saved["format_version"] == 2 != FORMAT_VERSION  # a reader of version 1 says "Upgrade bertbridge"
    damaged = tmp_path / "damaged"
    copy_files(model.path, damaged)
    (damaged / "bertbridge.json").write_text(json.dumps({**saved, "long_text": {**LONG, "aggregate": "median"}}))
    with pytest.raises(bertbridge.BertbridgeError, match="manifest field 'long_text' must hold stride"):
        Manifest.read(damaged)


def test_explain_and_attention_refuse_a_text_of_several_windows(windowed, tmp_path):
    from bertbridge.core.debugger.attention_view import from_model
    from bertbridge.core.debugger.explain import explain

    model, _ = windowed
    long = _reviews(2)[0]
    for call, name in ((lambda t: explain(model, t), "explain"), (lambda t: from_model(model, t), "attention")):
        with pytest.raises(DataError, match=f"{name} reads one window of 16 tokens, and this model .task.long_text."):
            call(long)
    assert explain(model, "the film was good .")["tokens"][0] == "[CLS]"  # a text of one window is explained
