"""The fast serving formats: ``pt2`` (torch.export), ONNX with ONNX Runtime's fusions, and dynamic int8
ONNX with its accuracy budget; export folders open with the backend of their format, and the server
serves them (one process or several)."""

import json
import os
import signal
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.errors import ArtifactError, DataError  # noqa: E402
from bertbridge.testing import tiny  # noqa: E402

TEXTS = ["the film was good", "a dull and boring plot , really", "ugly", "good good good fun"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fast")
    data = {"train": str(write_tsv(tmp / "t.tsv", toy_sentences(96, 1))),
            "validation": str(write_tsv(tmp / "v.tsv", toy_sentences(40, 2)))}
    return bertbridge.train(tiny_spec(tiny_model_dir, data, tmp / "model", epochs=3))


@pytest.fixture(scope="module")
def pt2_export(trained, tmp_path_factory):
    return bertbridge.export(trained.path, "pt2", tmp_path_factory.mktemp("pt2") / "pt2")


@pytest.fixture(scope="module")
def optimized_onnx(trained, tmp_path_factory):
    return bertbridge.export(trained.path, "onnx", tmp_path_factory.mktemp("opt") / "opt", optimize=True)


def manifest_export(path) -> dict:
    return json.loads((path.parent / "bertbridge.json").read_text())["export"]


# -- pt2 ---------------------------------------------------------------------------------------------
def test_pt2_export_opens_as_itself_and_predicts_like_the_model(trained, pt2_export):
    from bertbridge.backends.pytorch.export import ExportedProgramModel

    path = pt2_export
    assert path.name == "model.pt2" and manifest_export(path) == {"format": "pt2", "file": "model.pt2"}
    served = bertbridge.load(path.parent)
    assert isinstance(served.model, ExportedProgramModel) and served.backend == "pytorch"
    # batch sizes and lengths other than the traced (2, 16): one sentence, and four of different lengths
    np.testing.assert_allclose(served.predict_proba(TEXTS), trained.predict_proba(TEXTS), atol=1e-5)
    np.testing.assert_allclose(served.predict_proba(TEXTS[:1]), trained.predict_proba(TEXTS[:1]), atol=1e-5)


def _rewrite(src, dst, change, extra=()) -> None:
    import warnings

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name on purpose
        for name, data in extra:  # written first: a reader that takes the first copy of a name gets these
            zout.writestr(zin.namelist()[0].split("/")[0] + "/" + name, data)
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info.filename)))


PICKLED_CONFIG = json.dumps({"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}).encode()


@pytest.mark.parametrize("tamper", ["sample_inputs", "use_pickle", "duplicate_config", "aoti_library"])
def test_a_pt2_holding_a_pickle_is_refused_before_loading(pt2_export, tmp_path, tamper):
    from bertbridge.backends.pytorch.export import load_pt2

    path = pt2_export
    bad = tmp_path / "bad.pt2"

    def change(name: str, data: bytes) -> bytes:
        if tamper == "sample_inputs" and "/data/sample_inputs/" in name:
            return b"\x80\x04pickled"
        if tamper == "use_pickle" and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        return data

    extra = {"duplicate_config": [("data/weights/model_weights_config.json", PICKLED_CONFIG)],
             "aoti_library": [("data/aotinductor/model/model.so", b"\x7fELF")]}.get(tamper, [])
    _rewrite(path, bad, change, extra)
    with pytest.raises(ArtifactError, match="which loading could unpickle or run"):
        load_pt2(bad)
    load_pt2(path)  # the untouched export passes the same check


# -- optimized and int8 ONNX -------------------------------------------------------------------------
def test_optimized_onnx_records_its_fusions_and_computes_what_the_model_does(trained, optimized_onnx):
    path = optimized_onnx
    export = manifest_export(path)
    assert export["optimized"] is True and export["quantized"] is None and "validation" not in export
    assert export["fused_operators"].get("SkipLayerNormalization", 0) >= 2  # the residual + LayerNorm pairs
    served = bertbridge.load(path.parent)
    assert served.backend == "onnx"
    np.testing.assert_allclose(served.predict_proba(TEXTS), trained.predict_proba(TEXTS), atol=1e-4)


def test_int8_export_is_scored_against_the_model_and_the_numbers_are_kept(trained, tmp_path, capsys):
    from bertbridge.core.cli import main

    valid = trained.manifest.data["validation_file"]  # the training run's validation file is the default
    assert main(["export", str(trained.path), "--format", "onnx", "--out", str(tmp_path / "q"), "--optimize",
                 "--quantize", "int8"]) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "q" / "model.onnx"
    assert out.strip() == str(path.resolve())
    export = manifest_export(path)
    check = export["validation"]
    assert (export["quantized"], export["optimized"], check["metric"], check["data"]) == ("int8", True, "accuracy", valid)
    assert check["model"] == pytest.approx(trained.evaluate(valid)["accuracy"], abs=1e-6)
    served = bertbridge.load(path.parent)
    assert served.backend == "onnx"
    assert check["export"] == pytest.approx(served.evaluate(valid)["accuracy"], abs=1e-6)
    assert check["drop"] == pytest.approx(100 * (check["model"] - check["export"]), abs=1e-3) and check["drop"] <= 1.0
    assert f"accuracy: model {check['model']:.4f}, export {check['export']:.4f}, drop {check['drop']:.2f} points" in err
    # the MatMul weights are int8 now (embedding tables stay float32), and it still predicts like the model
    import onnx

    graph = onnx.load(str(path)).graph
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in graph.node}
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer) >= 2 * 4  # >= 4 MatMuls per layer
    assert sorted(p.name for p in path.parent.glob("model.onnx*")) == ["model.onnx"]  # no stale float32 weights file
    agree = np.mean([a["label"] == b["label"] for a, b in zip(served.predict(TEXTS), trained.predict(TEXTS))])
    assert agree >= 0.75


def test_int8_export_over_its_budget_is_refused_with_both_scores_and_writes_nothing(trained, tmp_path, monkeypatch):
    from bertbridge.core.tasks import export_quality

    scores = iter([0.9, 0.875])  # the model, then the export: 2.5 points lost
    monkeypatch.setattr(export_quality, "_score", lambda *args: next(scores))
    with pytest.raises(ArtifactError, match=r"scores accuracy 0\.8750 .* against the model's 0\.9000: a drop of 2\.50 points, "
                                            r"over the 1-point budget \(--max-drop\), so nothing was written"):
        bertbridge.export(trained.path, "onnx", tmp_path / "q", quantize="int8")
    assert not (tmp_path / "q").exists() and not list(tmp_path.glob(".q.tmp-*"))


def test_a_refusal_says_how_much_data_the_budget_needs(trained, tmp_path, monkeypatch):
    from bertbridge.core.tasks import export_quality

    scores = iter([0.9, 0.875, 0.9, 0.875])
    monkeypatch.setattr(export_quality, "_score", lambda *args: next(scores))
    with pytest.raises(ArtifactError, match=r"up to 100/N points, which is over 2 below 50 examples\. Check on more labelled "
                                            r"data with --validate DATA"):
        bertbridge.export(trained.path, "onnx", tmp_path / "q", quantize="int8", max_drop=2.0)
    with pytest.raises(ArtifactError) as refused:  # a zero budget has no example count to name
        bertbridge.export(trained.path, "onnx", tmp_path / "q", quantize="int8", max_drop=0.0)
    assert "100/N" not in str(refused.value) and "over the 0-point budget" in str(refused.value)


def test_int8_export_without_labelled_data_names_the_flag_before_any_work(tiny_model_dir, tmp_path, monkeypatch):
    from bertbridge.backends.pytorch.backend import PyTorchBackend

    data = {"train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(32, 1)))}
    model = bertbridge.train(tiny_spec(tiny_model_dir, data, tmp_path / "model", epochs=1))
    monkeypatch.setattr(PyTorchBackend, "export", lambda *a, **k: pytest.fail("the export ran before the check"))
    with pytest.raises(DataError, match=r"a quantized export is checked against the model on labelled data, and none was given\. "
                                        r"Pass --validate DATA"):
        bertbridge.export(model.path, "onnx", tmp_path / "q", quantize="int8")
    with pytest.raises(DataError, match=r"--validate nowhere\.tsv: no such file"):
        bertbridge.export(model.path, "onnx", tmp_path / "q", quantize="int8", validate="nowhere.tsv")
    assert not (tmp_path / "q").exists()


def test_question_answering_int8_export_is_judged_by_f1(tiny_model_dir, tmp_path):
    train, dev = tmp_path / "train.json", tmp_path / "dev.json"
    tiny.toy_squad(train, 48, seed=1)
    tiny.toy_squad(dev, 12, seed=2)
    model = bertbridge.train(tiny.qa_spec(tiny_model_dir, {"train": str(train)}, tmp_path / "model", epochs=4))
    path = bertbridge.export(model.path, "onnx", tmp_path / "q", optimize=True, quantize="int8", validate=dev, max_drop=100)
    check = manifest_export(path)["validation"]
    assert check["metric"] == "f1" and check["model"] == pytest.approx(model.evaluate(dev)["f1"], abs=1e-6)
    served = bertbridge.load(path.parent)
    assert served.backend == "onnx" and check["export"] == pytest.approx(served.evaluate(dev)["f1"], abs=1e-6)


def test_an_export_is_not_exported_again_and_its_weights_save_as_a_model_folder(trained, optimized_onnx, tmp_path):
    path = optimized_onnx
    with pytest.raises(bertbridge.BertbridgeError, match=r"an export \(onnx\), not a model folder; export from the model folder"):
        bertbridge.export(path.parent, "pt2", tmp_path / "again")
    resaved = bertbridge.load(path.parent, backend="pytorch").save(tmp_path / "resaved")
    reopened = bertbridge.load(resaved)
    assert reopened.manifest.export == {} and reopened.backend == "pytorch"
    np.testing.assert_allclose(reopened.predict_proba(TEXTS), trained.predict_proba(TEXTS), atol=1e-6)


def test_validation_options_without_quantizing_are_refused(trained, tmp_path):
    with pytest.raises(bertbridge.BertbridgeError, match="validate and max_drop judge a quantized export"):
        bertbridge.export(trained.path, "onnx", tmp_path / "o", max_drop=2.0)
    with pytest.raises(bertbridge.BertbridgeError, match=r"max_drop=-1\.0: give the largest drop allowed"):
        bertbridge.export(trained.path, "onnx", tmp_path / "o", quantize="int8", max_drop=-1.0)


def test_quantizing_a_format_nobody_quantizes_lists_what_can_be(trained, tmp_path):
    with pytest.raises(bertbridge.BertbridgeError, match=r"no backend can quantize 'pt2' exports to int8; available: onnx: int8 \(onnx\)"):
        bertbridge.export(trained.path, "pt2", tmp_path / "p", quantize="int8", validate="x")


# -- serving ---------------------------------------------------------------------------------------
def test_the_server_app_runs_an_export_with_its_own_backend(trained, optimized_onnx, monkeypatch):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from bertbridge.core.serving.server import SERVE_ENV, ServerConfig, app_from_environment

    path = optimized_onnx
    monkeypatch.setenv(SERVE_ENV, json.dumps({"model": str(path.parent), "backend": None, "config": ServerConfig().__dict__}))
    app = app_from_environment()
    assert app.state.model.backend == "onnx"
    with TestClient(app) as client:
        got = client.post("/invocations", json=TEXTS).json()["predictions"]
    assert [p["label"] for p in got] == [p["label"] for p in trained.predict(TEXTS)]


def test_bad_thread_count_is_refused_with_the_variable(trained, monkeypatch):
    monkeypatch.setenv("BERTBRIDGE_THREADS", "two")
    with pytest.raises(bertbridge.BertbridgeError, match=r"BERTBRIDGE_THREADS='two': give a whole number of threads"):
        bertbridge.load(trained.path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_two_worker_processes_serve_one_port_and_stop_on_sigterm(trained, tmp_path):
    from conftest import process_alive
    from test_scriptmode import _children
    from test_server import _start_server

    proc, port = _start_server(trained.path, "--workers", "2")
    workers = [pid for pid in _children(proc.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
    try:
        assert len(workers) == 2
        answers = []
        for text in TEXTS * 5:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(text).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                answers.append(json.loads(r.read())["predictions"][0]["label"])
        assert answers == [p["label"] for p in trained.predict(TEXTS)] * 5
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    serving = json.loads(out.splitlines()[0])
    assert (serving["event"], serving["workers"], serving["threads"]) == ("serving", 2, str(max(1, len(os.sched_getaffinity(0)) // 2)))
    assert proc.returncode in (0, -signal.SIGTERM), err[-2000:]
    assert not [pid for pid in workers if process_alive(pid)], "a worker outlived the server"
