"""The bertbridge command line: commands, output formats, and errors without tracebacks."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_spec

from bertbridge.core.cli import main

pytest.importorskip("torch")


def _console(*args, cwd=None):
    exe = shutil.which("bertbridge") or str(Path(sys.executable).parent / "bertbridge")
    env = {**os.environ, "BERTBRIDGE_PROGRESS": "0"}
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_backends_command_lists_all_three_from_entry_points():
    out = _console("backends")
    assert out.returncode == 0
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert {"pytorch", "tensorflow", "mxnet"} <= set(rows)
    assert re.search(r"pytorch\s+yes\s+\d+\.\d+", rows["pytorch"])


def test_backends_json(capsys):
    assert main(["backends", "--json"]) == 0
    data = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert data["pytorch"]["available"] is True and data["pytorch"]["tasks"] == ["text_classification", "question_answering"]
    assert data["mxnet"]["tasks"] == data["tensorflow"]["tasks"] == ["text_classification", "question_answering"]


FAKE_PYTHON = """#!/bin/sh
# stands in for another environment's interpreter: answers `-m bertbridge.core.cli backends --json`
echo '[{"name": "mxnet", "available": true, "version": "9.9.9", "detail": "ok", "tasks": ["text_classification"]}]'
"""


def test_backends_reports_a_forwarded_backend_as_its_interpreter_sees_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    if importlib.util.find_spec("mxnet"):
        pytest.skip("MXNet is importable here, so nothing is forwarded")
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    monkeypatch.setenv("BERTBRIDGE_MXNET_PYTHON", str(fake))
    assert main(["backends", "--json"]) == 0
    mxnet = {b["name"]: b for b in json.loads(capsys.readouterr().out)}["mxnet"]
    assert (mxnet["available"], mxnet["version"], mxnet["python"]) == (True, "9.9.9", str(fake))
    assert mxnet["detail"] == f"forwarded to {fake} (BERTBRIDGE_MXNET_PYTHON)"  # not "pip install ..."
    monkeypatch.setenv("BERTBRIDGE_MXNET_PYTHON", str(tmp_path / "missing"))
    assert main(["backends"]) == 0  # a wrong variable is reported in mxnet's row; the others still list
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "BERTBRIDGE_MXNET_PYTHON" in rows["mxnet"] and "not an executable" in rows["mxnet"]
    assert re.search(r"pytorch\s+yes", rows["pytorch"])


@pytest.fixture()
def spec_file(tiny_model_dir, toy_data, tmp_path):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(tiny_model_dir, toy_data, tmp_path / "model")))
    return path


def test_train_evaluate_predict_round_trip(spec_file, toy_data, tmp_path, capsys):
    assert main(["train", str(spec_file), "--set", "training.epochs=12", "--output-dir", str(tmp_path / "cli-model")]) == 0
    out = capsys.readouterr().out
    assert f"model_dir={tmp_path / 'cli-model'}" in out and "eval_accuracy=" in out

    assert main(["evaluate", str(tmp_path / "cli-model"), toy_data["validation"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    metrics = dict(line.split("=", 1) for line in lines)
    assert float(metrics["accuracy"]) >= 0.9 and "f1_positive" in metrics and "mcc" in metrics

    assert main(["predict", str(tmp_path / "cli-model"), "--text", "the film was good", "--text", "dull plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert rows[0]["text"] == "the film was good" and set(rows[0]["probabilities"]) == {"negative", "positive"}

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "lovely story"}\n\n{"text": "awful food"}\n')
    out_file = tmp_path / "pred.jsonl"
    assert main(["predict", str(tmp_path / "cli-model"), "--input", str(inp), "--output", str(out_file)]) == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [(r["line"], r["label"]) for r in rows] == [(1, "positive"), (3, "negative")]


def test_spec_command_prints_the_resolved_spec(spec_file, capsys):
    import yaml

    assert main(["spec", str(spec_file), "--set", "training.seed=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["seed"] == 3 and printed["task"]["type"] == "text_classification"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "{spec}", "--set", "training.epohcs=2"], r"spec\.training\.epohcs is not a known field\. Did you mean 'epochs'\?"),
        (["train", "{spec}", "--backend", "jax"], r"invalid backend name 'jax'; available: mxnet, onnx, pytorch, tensorflow"),
        (["train", "{spec}", "--set", "data.train={tmp}/missing.tsv"], r"missing\.tsv: file not found"),
        (["train", "{spec}", "--set", "model.name=bert-large"], r"model 'bert-large' is neither a local folder nor a known alias"),
        (["train", "{tmp}/nope.yaml"], r"nope\.yaml: spec file not found"),
        (["evaluate", "{tmp}", "{tmp}/x.tsv"], r"no bertbridge\.json, so this is not a bertbridge model folder"),
        (["predict", "{tmp}/none", "--text", "x"], r"no such model folder"),
        (["predict", "{tmp}", "--text", "x", "--output", "{tmp}/no/dir/p.jsonl"], r"p\.jsonl: cannot write predictions there"),
        (["train", "{spec}", "--output-dir", "{spec}"], r"spec\.yaml: exists and is a file; output_dir must be a folder path"),
    ],
)
def test_bad_input_is_one_paragraph_without_traceback(spec_file, tmp_path, args, message):
    args = [a.format(spec=spec_file, tmp=tmp_path) for a in args]
    out = _console(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert re.search(message, out.stderr), out.stderr
    assert out.stderr.startswith(f"bertbridge {args[0]}: error: ") and out.stderr.count("\n") == 1
