"""What is particular to the TensorFlow backend: SavedModel export and TF Serving handlers, no torch import,
BERT-only checkpoints, pre-training heads dropped.

The contract every backend meets (same artifact, same logits and AdamW steps as PyTorch, ...) is the
conformance suite: bertbridge/testing/conformance.py, run by tests/test_backend_conformance.py.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.backend import ModelSetup  # noqa: E402
from bertbridge.core.plugins.registry import backends  # noqa: E402

TEXTS = ["the film was good", "a dull and boring plot", "it is really lovely", "ugly", "the food was not bad , really"]


@pytest.fixture()
def tf_trained(tiny_model_dir, toy_data, tmp_path):
    return bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "tf"), backend="tensorflow")


def test_tensorflow_training_never_imports_torch_or_transformers(tiny_model_dir, tmp_path):
    data = {"train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(16)))}
    spec = json.dumps(tiny_spec(tiny_model_dir, data, tmp_path / "out", epochs=1))
    code = f"""
import json, sys, bertbridge
clf = bertbridge.train(json.loads({spec!r}), backend="tensorflow")
bertbridge.load(clf.path).predict(["good film"])
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {{"torch", "transformers", "mxnet"}})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_unsupported_architectures_are_refused_clearly(tmp_path, tokenizer_dir):
    import shutil

    from bertbridge.core.errors import NotSupportedError

    folder = tmp_path / "electra"
    shutil.copytree(tokenizer_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "electra"}))
    (folder / "model.safetensors").write_bytes(b"")
    setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "a", 1: "b"}, seed=0)
    with pytest.raises(NotSupportedError, match="model_type 'electra' is not supported by the tensorflow backend; "
                                                "it supports bert, distilbert, roberta, xlm-roberta"):
        backends().get("tensorflow").create_model(folder, setup)


class _Context:
    def __init__(self, content_type="application/json", accept="application/json"):
        self.request_content_type = content_type
        self.accept_header = accept


class _Response:
    def __init__(self, outputs, status_code=200):
        self.status_code = status_code
        self.content = json.dumps({"outputs": outputs}).encode()


def test_savedmodel_export_and_tf_serving_handlers(tiny_model_dir, toy_data, tmp_path):
    """A PyTorch-trained model exported as a SavedModel answers like the Python API."""
    import importlib.util
    import io

    import tensorflow as tf

    pytest.importorskip("torch")
    clf = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "pt"), backend="pytorch")
    version = bertbridge.export(clf.path, "savedmodel", tmp_path / "export")
    assert version == tmp_path / "export" / "1" and (version / "saved_model.pb").is_file()
    code = tmp_path / "export" / "code"
    assert {p.name for p in code.iterdir()} >= {"inference.py", "bertbridge_serving.py", "requirements.txt", "tokenizer.json", "bertbridge.json"}

    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    feats = clf.encode(TEXTS)
    from bertbridge.core.text.batching import collate

    batch = collate(feats, np.arange(len(TEXTS)))
    out = signature(**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(out["logits"].numpy(), clf.logits(feats), atol=1e-4)

    sys.path.insert(0, str(code))
    try:
        spec = importlib.util.spec_from_file_location("bb_inference", code / "inference.py")
        inference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(inference)
        request = json.loads(inference.input_handler(io.BytesIO(json.dumps({"inputs": TEXTS}).encode()), _Context()))
        assert request["signature_name"] == "serving_default"
        served = signature(**{k: tf.constant(np.array(v, dtype=np.int64)) for k, v in request["inputs"].items()})
        body, ctype = inference.output_handler(_Response({k: v.numpy().tolist() for k, v in served.items()}), _Context())
        assert ctype == "application/json"
        got = json.loads(body)["predictions"]
        want = clf.predict(TEXTS)
        assert [g["label"] for g in got] == [w["label"] for w in want]
        for g, w in zip(got, want):
            assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        with pytest.raises(ValueError, match=r"^400: invalid JSON at line 1"):
            inference.input_handler(io.BytesIO(b"{oops"), _Context())
        with pytest.raises(ValueError, match=r"^415: unsupported Content-Type"):
            inference.input_handler(io.BytesIO(b"a"), _Context(content_type="application/x-www-form-urlencoded"))
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("bertbridge_serving", None)

    from bertbridge.core.errors import ArtifactError, NotSupportedError

    with pytest.raises(ArtifactError, match="version 1 already exists"):
        bertbridge.export(clf.path, "savedmodel", tmp_path / "export")
    assert bertbridge.export(clf.path, "savedmodel", tmp_path / "export", version=2).name == "2"
    with pytest.raises(NotSupportedError, match=r"invalid export format 'tflite'; available: mxnet-symbol \(mxnet\), onnx \(pytorch\), pt2 \(pytorch\), savedmodel \(tensorflow\), torchscript \(pytorch\)"):
        bertbridge.export(clf.path, "tflite", tmp_path / "x")


def test_cli_export_savedmodel(tf_trained, tmp_path, capsys):
    from bertbridge.core.cli import main

    assert main(["export", str(tf_trained.path), "--format", "savedmodel", "--out", str(tmp_path / "srv"), "--version", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "srv" / "3")
    assert (tmp_path / "srv" / "3" / "variables").is_dir()
    assert main(["export", str(tf_trained.path), "--format", "savedmodel", "--out", str(tmp_path / "srv"), "--version", "3"]) == 2


def test_tensorflow_fine_tunes_a_pretraining_checkpoint(tmp_path, toy_data):
    """bert-base-style folders carry cls.* pre-training heads; they are dropped, not trained."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from conftest import TINY_CONFIG, VOCAB, write_tokenizer_folder

    folder = write_tokenizer_folder(tmp_path / "pretraining")
    torch.manual_seed(0)
    transformers.BertForPreTraining(transformers.BertConfig(**{**TINY_CONFIG, "vocab_size": len(VOCAB)})).save_pretrained(folder)
    clf = bertbridge.train(tiny_spec(folder, toy_data, tmp_path / "m", epochs=1), backend="tensorflow")
    from safetensors.numpy import load_file

    assert not [k for k in load_file(str(clf.path / "model.safetensors")) if k.startswith(("cls.", "bert.cls."))]
