"""Question-answering exports (ONNX, TorchScript, TF Serving SavedModel) answer exactly like the
model they came from, long contexts included, through every serving path built on them."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import bertbridge  # noqa: E402
from bertbridge.core.tasks.qa.squad import read_squad  # noqa: E402
from bertbridge.core.text.batching import collate  # noqa: E402
from bertbridge.testing import tiny  # noqa: E402

LONG = " ".join(["the plot , the story"] * 20) + " and the actors were great in it , mostly ."  # many 48-token windows


@pytest.fixture(scope="module")
def qa(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa-export")
    train, dev = tmp / "train.json", tmp / "dev.json"
    tiny.toy_squad(train, 64, seed=1)
    tiny.toy_squad(dev, 12, seed=2)
    model = bertbridge.train(tiny.qa_spec(tiny_model_dir, {"train": str(train)}, tmp / "model", epochs=6), backend="pytorch")
    return model, dev


def pairs_of(dev: Path) -> list[dict]:
    examples = read_squad(dev).examples
    return [{"question": e.question, "context": e.context} for e in examples] + [{"question": "what is good ?", "context": LONG}]


def assert_same_answers(got: list[dict], want: list[dict]) -> None:
    assert [(g["answer"], g["start"], g["end"]) for g in got] == [(w["answer"], w["start"], w["end"]) for w in want]
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=1e-4)


def test_the_long_context_takes_several_windows(qa):
    model, _ = qa
    features = model.features(read_squad_pairs([("what is good ?", LONG)]))
    assert len(features) > 3  # so the export tests below answer across windows


def read_squad_pairs(pairs):
    from bertbridge.core.tasks.qa.squad import examples_from_pairs

    return examples_from_pairs([q for q, _ in pairs], [c for _, c in pairs])


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_torch_exports_give_start_and_end_logits_like_the_model(qa, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from bertbridge.backends.pytorch.export import run_export

    model, dev = qa
    path = bertbridge.export(model.path, fmt, tmp_path / fmt)
    features = model.features(read_squad(dev).examples)
    batch = collate(features, np.arange(len(features)))
    got = run_export(fmt, path)(batch)
    assert got.shape == (len(features), batch["input_ids"].shape[1], 2)
    np.testing.assert_allclose(got, model.model.logits(batch), atol=1e-4)
    if fmt == "onnx":
        import onnxruntime as ort

        names = [o.name for o in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()]
        assert names == ["start_logits", "end_logits"]


def test_onnx_export_answers_like_the_model_in_process_and_over_http(qa, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from bertbridge.core.serving.server import create_app

    model, dev = qa
    path = bertbridge.export(model.path, "onnx", tmp_path / "onnx")
    served = bertbridge.load(path.parent, backend="onnx")
    pairs = pairs_of(dev)
    want = model.predict(pairs)
    assert want[-1]["answer"] == "great"  # the long context is answered, not cut
    assert_same_answers(served.predict(pairs), want)
    assert served.evaluate(dev)["f1"] == pytest.approx(model.evaluate(dev)["f1"])
    with TestClient(create_app(served.predict, normalize=served.normalize_request)) as client:
        response = client.post("/invocations", json=pairs)
        assert response.status_code == 200
        assert_same_answers(response.json()["predictions"], want)
        bad = client.post("/invocations", json=[{"question": "what is good ?"}])
        assert bad.status_code == 400 and "context" in bad.json()["error"]["message"]


def test_onnx_backend_refuses_an_export_of_another_head(qa, tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("onnxruntime")
    from conftest import tiny_spec

    model, _ = qa
    clf = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "clf", epochs=1))
    onnx = bertbridge.export(clf.path, "onnx", tmp_path / "clf-onnx")
    mixed = tmp_path / "mixed"
    from bertbridge.core.io.artifacts import copy_files

    copy_files(model.path, mixed)
    for part in onnx.parent.glob("model.onnx*"):  # the graph and its external weights file
        (mixed / part.name).write_bytes(part.read_bytes())
    with pytest.raises(bertbridge.BertbridgeError, match=r"needs \['start_logits', 'end_logits'\].*export it again"):
        bertbridge.load(mixed, backend="onnx")


# -- TF Serving ---------------------------------------------------------------------------
class _FakeTFServing:
    """TF Serving's REST predict API (columnar ``inputs`` -> ``outputs``) over a loaded SavedModel."""

    def __init__(self, version_dir: Path) -> None:
        import tensorflow as tf

        signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                out = signature(**{k: tf.constant(np.asarray(v, dtype=np.int64)) for k, v in body["inputs"].items()})
                data = json.dumps({"outputs": {k: v.numpy().tolist() for k, v in out.items()}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v1/models/model:predict"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HANDLER_SCRIPT = r"""
import io, json, sys
sys.path.insert(0, sys.argv[1])
import inference, bertbridge

class Context:
    def __init__(self, uri, content_type="application/json", accept="application/json"):
        self.rest_uri, self.request_content_type, self.accept_header = uri, content_type, accept

uri = sys.argv[2]
results = {"bertbridge_file": bertbridge.__file__}
body, ctype = inference.handler(io.BytesIO(sys.stdin.buffer.read()), Context(uri))
results["ok"] = [json.loads(body), ctype]
errors = []
for bad, content_type in ((b"{oops", "application/json"), (b'[{"question": "q"}]', "application/json"),
                          (b"a", "application/x-www-form-urlencoded")):
    try:
        inference.handler(io.BytesIO(bad), Context(uri, content_type))
        errors.append(None)
    except ValueError as exc:
        errors.append(str(exc))
results["errors"] = errors
print(json.dumps(results))
"""


def run_tf_serving_handler(version: Path, code: Path, payload, tmp_path: Path) -> tuple[dict, int]:
    """HANDLER_SCRIPT's results for ``payload`` (and TF Serving's request count), the export's ``code/``
    run with only its own folder's bertbridge, as the TF Serving container runs it."""
    fake = _FakeTFServing(version)
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run([sys.executable, "-c", HANDLER_SCRIPT, str(code), fake.uri], input=json.dumps(payload).encode(),
                              capture_output=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    finally:
        fake.close()
    assert Path(result["bertbridge_file"]).resolve().is_relative_to(code.resolve())  # the vendored copy ran
    return result, fake.requests


def test_savedmodel_qa_export_answers_through_the_tf_serving_handler(qa, tmp_path):
    """The export's code/inference.py, run with only its own folder's bertbridge (as the TF Serving
    container runs it), answers like the model, long contexts across several windows included."""
    tf = pytest.importorskip("tensorflow")
    model, dev = qa
    version = bertbridge.export(model.path, "savedmodel", tmp_path / "export")
    code = tmp_path / "export" / "code"
    assert {"inference.py", "requirements.txt", "tokenizer.json", "bertbridge.json", "bertbridge"} <= {p.name for p in code.iterdir()}
    assert "tokenizers" in (code / "requirements.txt").read_text()

    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    features = model.features(read_squad(dev).examples)
    batch = collate(features, np.arange(len(features)))
    out = signature(**{k: tf.constant(v) for k, v in batch.items()})
    assert set(out) == {"start_logits", "end_logits"}
    np.testing.assert_allclose(np.stack([out["start_logits"].numpy(), out["end_logits"].numpy()], -1),
                               model.model.logits(batch), atol=1e-4)

    pairs = pairs_of(dev)
    result, requests = run_tf_serving_handler(version, code, pairs, tmp_path)
    body, ctype = result["ok"]
    assert ctype == "application/json"
    assert_same_answers(body["predictions"], model.predict(pairs))
    assert requests >= 1
    bad_json, no_context, bad_type = result["errors"]
    assert bad_json.startswith("400: invalid JSON at line 1")
    assert no_context.startswith("400: ") and "context" in no_context
    assert bad_type.startswith("415: unsupported Content-Type")


def test_a_question_longer_than_max_question_length_is_cut_and_answered(qa):
    """Documented rule (docs/question-answering.md): the first max_question_length tokens are kept."""
    model, _ = qa
    limit = model.settings["max_question_length"]
    long_question = "what is good ? " * 20
    features = model.features(read_squad_pairs([(long_question, "the film was great .")]))
    question_tokens = int((np.asarray(features.token_type_ids[0]) == 0).sum()) - 2  # [CLS] and [SEP] are segment 0
    assert question_tokens == limit
    answer = model.predict({"question": long_question, "context": "the film was great ."})[0]
    assert answer["answer"] == "great" and (answer["start"], answer["end"]) == (13, 18)
