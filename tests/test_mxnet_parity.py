"""MXNet against PyTorch and TensorFlow, driven from the main environment.

MXNet lives in its own environment (make mxnet-env); these tests reach it the way
users do: through BERTBRIDGE_MXNET_PYTHON (make test sets it) or .venv-mxnet. Same-artifact
logits and AdamW steps across the environments are in the conformance suite
(tests/test_backend_conformance.py, tests/mxnet_env/test_mxnet_conformance.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import mx_python, tiny_spec

import bertbridge
from bertbridge.core.backend import ModelSetup
from bertbridge.core.io.artifacts import Manifest, write_manifest
from bertbridge.core.plugins.registry import backends
from bertbridge.core.text.tokenize import TextEncoder

TEXTS = ["the film was good", "the food was awful", "a very dull plot", "happy and charming actors and a lovely story"]


def _in_mxnet(code: str, **args) -> dict:
    out = subprocess.run([mx_python(), "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


RAW_LOGITS = """
import json, sys
import numpy as np
from bertbridge.core.plugins.registry import backends
from bertbridge.core.backend import ModelSetup
from bertbridge.core.text.batching import collate
from bertbridge.core.text.tokenize import TextEncoder
a = json.loads(sys.argv[1])
setup = ModelSetup(num_labels=a["n"], multi_label=False, id2label={i: str(i) for i in range(a["n"])}, seed=3,
                   weight_decay=0.01, max_grad_norm=0.5)
model = backends().get("mxnet").load_model(a["model"], setup)
enc = TextEncoder.from_pretrained(a["model"])
feats = enc.encode(a["texts"], max_length=a.get("max_length", 64))
batch = collate(feats, np.arange(len(a["texts"])), labels=np.array(a.get("labels") or [0] * len(a["texts"])))
for lr in a.get("steps", []):
    model.accumulate(batch, 1.0)
    model.step(lr)
print(json.dumps(model.logits(batch).tolist()))
"""


def _classifier_folder(base: Path, tmp_path: Path, n: int) -> Path:
    setup = ModelSetup(num_labels=n, multi_label=False, id2label={i: str(i) for i in range(n)}, seed=1)
    out = tmp_path / f"start-{base.name}"
    out.mkdir()
    backends().get("pytorch").create_model(base, setup).save(out)
    TextEncoder.from_pretrained(base).save(out)
    write_manifest(out, Manifest(task="text_classification", labels=tuple(str(i) for i in range(n)), backend="pytorch",
                                 max_seq_length=64, lowercase=True))
    return out


def test_mxnet_trained_model_opens_in_pytorch_and_tensorflow(tiny_model_dir, toy_data, tmp_path):
    """Train with backend mxnet from this environment (the CLI forwards to the MXNet one)."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "mx", epochs=4), "backend": "mxnet"}))
    env = {**os.environ, "BERTBRIDGE_MXNET_PYTHON": mx_python()}
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "train", str(spec)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"model_dir={tmp_path / 'mx'}" in run.stdout
    assert Manifest.read(tmp_path / "mx").backend == "mxnet"
    got = np.array(_in_mxnet(RAW_LOGITS, model=str(tmp_path / "mx"), texts=TEXTS, n=2))
    probs = np.exp(got) / np.exp(got).sum(1, keepdims=True)
    for name in ("pytorch", "tensorflow"):
        pytest.importorskip({"pytorch": "torch", "tensorflow": "tensorflow"}[name])
        other = bertbridge.load(tmp_path / "mx", backend=name).predict_proba(TEXTS)
        assert np.abs(other - probs).max() <= 1e-4, name


def test_without_the_mxnet_environment_the_error_says_how_to_get_it(tiny_model_dir, toy_data, tmp_path):
    if __import__("importlib").util.find_spec("mxnet"):
        pytest.skip("MXNet is installed here")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "mx"), "backend": "mxnet"}))
    env = {k: v for k, v in os.environ.items() if k != "BERTBRIDGE_MXNET_PYTHON"}
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "train", str(spec)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "make mxnet-env" in run.stderr and "BERTBRIDGE_MXNET_PYTHON" in run.stderr
    bad = {**env, "BERTBRIDGE_MXNET_PYTHON": str(tmp_path / "nope" / "python")}
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "train", str(spec)], capture_output=True, text=True, env=bad, timeout=300)
    assert run.returncode == 2 and "is not an executable Python interpreter" in run.stderr


def test_a_forwarded_server_answers_and_stops_with_its_parent(tiny_model_dir, tmp_path):
    import signal
    import socket
    import time
    import urllib.request

    folder = _classifier_folder(tiny_model_dir, tmp_path, 2)
    manifest = json.loads((folder / "bertbridge.json").read_text())
    (folder / "bertbridge.json").write_text(json.dumps({**manifest, "backend": "mxnet"}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BERTBRIDGE_MXNET_PYTHON": mx_python()}
    parent = subprocess.Popen([sys.executable, "-m", "bertbridge.core.cli", "serve", str(folder), "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).read()
                break
            except OSError:
                assert time.time() < deadline and parent.poll() is None, parent.stdout.read() if parent.poll() is not None else "no answer"
                time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps({"inputs": TEXTS}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert len(answer["predictions"]) == len(TEXTS)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) in (0, 128 + signal.SIGTERM)  # uvicorn re-raises the signal after its shutdown
        output = parent.stdout.read()
        assert '"backend": "mxnet"' in output and '"event": "stopped"' in output  # the MXNet child stopped gracefully
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_run_local_on_all_three_backends_gives_servers_that_agree(tiny_model_dir, toy_data, tmp_path):
    """The issue's acceptance path: run-local trains one spec through each backend's entry point (MXNet in
    its own interpreter), each model.tar.gz is served the way the SageMaker image serves it, and the same
    request gets the same labels from all three servers."""
    import tarfile

    from test_scriptmode import _answers_through_docker_serve_script

    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "unused")))
    expected = ["positive", "negative", "negative", "positive"]
    for name in ("pytorch", "tensorflow", "mxnet"):
        python = mx_python() if name == "mxnet" else None
        run = bertbridge.run_local(spec, backend=name, base_dir=tmp_path / name, python=python, stream_output=False)
        assert run.returncode == 0, run.failure
        served = tmp_path / f"served-{name}"
        with tarfile.open(run.model_tar) as tar:
            tar.extractall(served, filter="data")
        _answers_through_docker_serve_script(served, TEXTS, expected, python=python)
