"""TorchScript (legacy) and ONNX exports: verified against the model, loadable, servable through onnxruntime.
The fast formats (pt2, optimized and int8 ONNX) are tested in test_fast_exports.py."""

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import tiny_spec  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.errors import NotSupportedError  # noqa: E402

TEXTS = ["the film was good", "a dull and boring plot , really", "ugly"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    from conftest import toy_sentences, write_tsv

    tmp = tmp_path_factory.mktemp("exp")
    data = {"train": str(write_tsv(tmp / "t.tsv", toy_sentences(96, 1)))}
    return bertbridge.train(tiny_spec(tiny_model_dir, data, tmp / "model", epochs=2))


def test_torchscript_export_still_matches_the_model_and_says_it_is_deprecated(trained, tmp_path):
    from bertbridge.backends.pytorch.export import run_export
    from bertbridge.core.text.batching import collate

    with pytest.warns(FutureWarning, match="torchscript export format is deprecated.*use --format pt2"):
        path = bertbridge.export(trained.path, "torchscript", tmp_path / "ts")
    assert path.name == "model.torchscript.pt" and (path.parent / "bertbridge.json").is_file()
    feats = trained.encode(TEXTS)
    batch = collate(feats, np.arange(len(TEXTS)))
    np.testing.assert_allclose(run_export("torchscript", path)(batch), trained.logits(feats), atol=1e-4)


def test_onnx_export_serves_through_onnxruntime(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    path = bertbridge.export(trained.path, "onnx", tmp_path / "onnx")
    served = bertbridge.load(path.parent, backend="onnx")
    assert (served.backend, served.trained_backend, trained.backend) == ("onnx", "pytorch", "pytorch")
    np.testing.assert_allclose(served.predict_proba(TEXTS), trained.predict_proba(TEXTS), atol=1e-4)
    assert [p["label"] for p in served.predict(TEXTS)] == [p["label"] for p in trained.predict(TEXTS)]
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from bertbridge.core.serving.server import create_app

    with TestClient(create_app(served.predict, text_pair=False)) as client:
        r = client.post("/invocations", json=TEXTS)
    assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in trained.predict(TEXTS)]


def test_onnx_export_without_its_packages_names_the_extra(trained, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(bertbridge.BertbridgeError, match=r"ONNX export needs onnxscript: pip install 'bertbridge\[onnx\]'"):
        bertbridge.export(trained.path, "onnx", tmp_path / "o")


def test_onnx_backend_is_inference_only(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(NotSupportedError, match="backend 'onnx' runs exported models only and cannot train; train with one of: mxnet, pytorch, tensorflow"):
        bertbridge.train(tiny_spec(trained.path, {"train": "x.tsv"}, tmp_path / "o"), backend="onnx")
    with pytest.raises(bertbridge.BertbridgeError, match="no model.onnx"):
        bertbridge.load(trained.path, backend="onnx")


def test_tensorflow_trained_model_exports_to_onnx(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    tf_model = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "tf", epochs=1), backend="tensorflow")
    path = bertbridge.export(tf_model.path, "onnx", tmp_path / "onnx")  # written by the pytorch backend
    served = bertbridge.load(path.parent, backend="onnx")
    np.testing.assert_allclose(served.predict_proba(TEXTS), tf_model.predict_proba(TEXTS), atol=1e-4)
    # optimized and quantized too, scored against the TensorFlow-trained model on its validation file
    path = bertbridge.export(tf_model.path, "onnx", tmp_path / "q", optimize=True, quantize="int8", max_drop=100)
    quantized = bertbridge.load(path.parent)
    assert (quantized.backend, quantized.trained_backend) == ("onnx", "tensorflow")
    check = quantized.manifest.export["validation"]
    assert check["model"] == pytest.approx(tf_model.metrics["accuracy"], abs=1e-6)
