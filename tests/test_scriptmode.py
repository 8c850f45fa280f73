"""SageMaker script mode and the local runner: environment, channels, failure file, tarballs, resume after kill."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import tiny_spec, toy_sentences, write_tsv

import bertbridge
from bertbridge.core.errors import SpecError
from bertbridge.core.sagemaker.scriptmode import Environment, build_spec, decode_value, parse_argv


@pytest.mark.parametrize(
    "raw, expected",
    [("3", 3), ('"3"', 3), ("2e-5", 2e-5), ("True", True), ("false", False), ('["a", "b"]', ["a", "b"]),
     ('"[\\"a\\"]"', ["a"]), ("minilm", "minilm"), ('"minilm"', "minilm"), (7, 7)],
)
def test_hyperparameter_values_decode_tolerantly(raw, expected):
    assert decode_value(raw) == expected


def test_argv_pairs():
    assert parse_argv(["--training.epochs", "3", "--backend=tensorflow", "--training.mixed_precision"]) == {
        "training.epochs": "3", "backend": "tensorflow", "training.mixed_precision": "true"}
    with pytest.raises(SpecError, match="passed as --key value"):
        parse_argv(["stray"])


def _sm_tree(tmp_path, spec: dict, hps: dict, channels: dict, modes=None):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(json.dumps({k: {"TrainingInputMode": (modes or {}).get(k, "File")} for k in channels}))
    env = {"SM_MODEL_DIR": str(tmp_path / "model"), "SM_INPUT_DIR": str(tmp_path / "input")}
    for name, files in channels.items():
        folder = tmp_path / "input" / "data" / name
        folder.mkdir(parents=True)
        for fname, text in files.items():
            (folder / fname).write_text(text)
        env[f"SM_CHANNEL_{name.upper()}"] = str(folder)
    (tmp_path / "input" / "data" / "spec" / "spec.json").write_text(json.dumps(spec)) if "spec" in channels else None
    return env


def test_environment_and_spec_from_channels_and_hyperparameters(tmp_path):
    env = _sm_tree(
        tmp_path, {"training": {"epochs": 5}},
        {"training.epochs": '"2"', "backend": "tensorflow", "sagemaker_program": "entry.py"},
        {"spec": {}, "train": {"t.tsv": "text\tlabel\na\tx\n"}, "validation": {"d.tsv": "text\tlabel\n"}, "extra": {"x": ""}},
    )
    env["SM_HPS"] = json.dumps({"training.seed": 5})
    sm = Environment.from_env(["--training.batch_size", "4"], env)
    spec = build_spec(sm)
    assert (spec.training.epochs, spec.training.seed, spec.training.batch_size) == (2, 5, 4)
    assert sm.hyperparameters["backend"] == "tensorflow"
    assert spec.data.train == str(tmp_path / "input" / "data" / "train" / "t.tsv")
    assert spec.output_dir == str(tmp_path / "model")
    assert spec.training.checkpoint_dir == str(tmp_path / "checkpoints")
    assert spec.debugger.out_dir is None  # no debugger asked for


def test_debugger_trial_goes_where_debug_hook_config_uploads_from(tmp_path):
    env = _sm_tree(tmp_path, {"debugger": {"attention": True}}, {}, {"spec": {}, "train": {"t.tsv": "text\tlabel\na\tx\n"}})
    env["SM_OUTPUT_DATA_DIR"] = str(tmp_path / "output" / "data")
    spec = build_spec(Environment.from_env([], env))
    assert spec.debugger.attention and spec.debugger.out_dir == str(tmp_path / "output" / "tensors")


def test_tensorboard_files_go_where_tensorboard_output_config_uploads_from(tmp_path):
    env = _sm_tree(tmp_path, {"tracking": {"tensorboard": "runs"}}, {}, {"spec": {}, "train": {"t.tsv": "text\tlabel\na\tx\n"}})
    env["SM_OUTPUT_DATA_DIR"] = str(tmp_path / "output" / "data")
    spec = build_spec(Environment.from_env([], env))
    assert spec.tracking.tensorboard == str(tmp_path / "output" / "tensorboard")
    env = _sm_tree(tmp_path / "plain", {}, {}, {"spec": {}, "train": {"t.tsv": "text\tlabel\na\tx\n"}})
    assert build_spec(Environment.from_env([], env)).tracking.tensorboard is None


def test_pipe_mode_channel_is_its_fifo(tmp_path):
    env = _sm_tree(tmp_path, {}, {}, {"spec": {}, "train": {}}, modes={"train": "Pipe"})
    spec = build_spec(Environment.from_env([], env))
    assert spec.data.train == str(tmp_path / "input" / "data" / "train_0") and spec.data.format is None


@pytest.mark.parametrize(
    "hps, channels, message",
    [
        ({"epochs": "3"}, {"spec": {}, "train": {"t.tsv": ""}}, "hyperparameter 'epochs' is not a spec field: use dotted keys"),
        ({}, {"train": {"t.tsv": ""}}, "no 'spec' channel"),
        ({}, {"spec": {}, "train": {"a.tsv": "", "b.tsv": ""}}, r"channel 'train' .* must hold one data file or \.tfrecord shards; it holds a\.tsv, b\.tsv"),
        ({}, {"spec": {}}, "no 'train' channel"),
    ],
)
def test_job_mistakes_are_explained(tmp_path, hps, channels, message):
    env = _sm_tree(tmp_path, {}, hps, channels)
    with pytest.raises(SpecError, match=message):
        build_spec(Environment.from_env([], env))


@pytest.fixture()
def spec_file(tiny_model_dir, toy_data, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "unused")))
    return path


def test_run_local_pytorch_file_mode_packs_a_servable_tarball(spec_file, tmp_path):
    pytest.importorskip("torch")
    run = bertbridge.run_local(spec_file, backend="pytorch", base_dir=tmp_path / "job", stream_output=False)
    assert run.returncode == 0 and run.failure is None
    with tarfile.open(run.model_tar) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "served", filter="data")
    assert {"bertbridge.json", "model.safetensors", "code/inference.py"} <= set(names)
    metrics = json.loads((tmp_path / "job" / "output" / "data" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9
    texts = ["the film was good", "dull plot"]
    assert bertbridge.load(tmp_path / "served").predict(texts) == bertbridge.load(run.model_dir).predict(texts)
    from bertbridge.core.serving import handlers  # what code/inference.py exposes to the PyTorch container

    model = handlers.model_fn(str(tmp_path / "served"))
    body, _ = handlers.output_fn(handlers.predict_fn(handlers.input_fn(json.dumps(texts), "application/json"), model), None)
    assert [p["label"] for p in json.loads(body)["predictions"]] == ["positive", "negative"]
    # bertbridge travels in code/ (with its entry points), so the container needs no bertbridge install
    assert {"code/bertbridge/core/serving/handlers.py", "code/requirements.txt"} <= set(names)
    assert any(n.startswith("code/bertbridge-") and n.endswith(".dist-info/entry_points.txt") for n in names)
    _answers_through_docker_serve_script(tmp_path / "served", texts, ["positive", "negative"])


def _answers_through_docker_serve_script(model_dir, texts, labels, python=None):
    """docker/mxnet/serve (what SageMaker runs as `docker run IMAGE serve`) answers from an unpacked model.tar.gz."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "PATH": os.path.dirname(python or sys.executable) + os.pathsep + os.environ["PATH"]}
    script = Path(__file__).resolve().parent.parent / "docker" / "mxnet" / "serve"
    server = subprocess.Popen(["sh", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read().decode()
                time.sleep(0.3)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(texts).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert [p["label"] for p in json.loads(resp.read())["predictions"]] == labels
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_run_local_tensorflow_pipe_mode(spec_file, tmp_path):
    pytest.importorskip("tensorflow")
    run = bertbridge.run_local(spec_file, backend="tensorflow", base_dir=tmp_path / "job", input_mode="Pipe", stream_output=False)
    assert run.returncode == 0, run.failure
    with tarfile.open(run.model_tar) as tar:
        names = set(tar.getnames())
    assert {"1/saved_model.pb", "code/inference.py", "code/bertbridge_serving.py", "bertbridge.json"} <= names
    assert json.loads((run.model_dir / "bertbridge.json").read_text())["backend"] == "tensorflow"


def test_failed_job_writes_the_failure_file(tiny_model_dir, tmp_path):
    train = write_tsv(tmp_path / "t.tsv", toy_sentences(16))
    dev = write_tsv(tmp_path / "d.tsv", [("fine film", "positive"), ("meh", "neutral")])
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec(tiny_model_dir, {"train": str(train), "validation": str(dev)}, tmp_path / "u")))
    run = bertbridge.run_local(tmp_path / "spec.json", base_dir=tmp_path / "job", stream_output=False)
    assert run.returncode == 2 and run.model_tar is None
    first = run.failure.splitlines()[0]
    assert first.startswith("DataError: ") and "line 3: label 'neutral' is not one of the task's labels" in first
    with pytest.raises(SpecError, match="training.epohcs is not a known field"):  # caught before any job starts
        bertbridge.run_local(tmp_path / "spec.json", base_dir=tmp_path / "job2", overrides=["training.epohcs=2"])


def test_run_local_uses_current_data_and_overrides(spec_file, tmp_path):
    pytest.importorskip("torch")
    spec = json.loads(spec_file.read_text())
    bertbridge.run_local(spec_file, base_dir=tmp_path / "job", overrides=["training.epochs=1"], stream_output=False)
    shorter = write_tsv(tmp_path / "short.tsv", toy_sentences(24, 5))
    spec["data"]["train"] = str(shorter)
    spec_file.write_text(json.dumps(spec))
    run = bertbridge.run_local(spec_file, base_dir=tmp_path / "job", overrides=["training.epochs=1"], stream_output=False)
    assert [p.name for p in (tmp_path / "job" / "input" / "data" / "train").iterdir()] == ["short.tsv"]  # not the stale copy
    # the job saw the new data, so the old run's checkpoint is not resumed into it
    assert run.returncode == 2 and "belongs to a run with a different spec or data" in run.failure


def test_killed_job_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    train = write_tsv(tmp_path / "t.tsv", toy_sentences(480, 1))
    # 240 steps: the kill lands at the first checkpoint (step 10), long before the end; the resumed run trains the rest
    spec = tiny_spec(tiny_model_dir, {"train": str(train)}, tmp_path / "unused", epochs=4, checkpoint_interval=10)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    base = tmp_path / "job"
    command = [os.path.join(os.path.dirname(sys.executable), "bertbridge"), "run-local", str(tmp_path / "spec.json"), "--base-dir", str(base)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((base / "checkpoints").glob("checkpoint-*")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the job ended"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the job, as a spot interruption would
    proc.wait(timeout=30)
    killed_at = int(sorted((base / "checkpoints").glob("checkpoint-*"))[-1].name.split("-")[1])
    assert killed_at < 240 and not (base / "output" / "model.tar.gz").exists()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    resumed = [line for line in done.stdout.splitlines() if line.startswith("resumed_from_step=")]
    assert resumed and int(resumed[0].split("=")[1].split()[0]) >= killed_at
    assert (base / "output" / "model.tar.gz").is_file()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_run_local_takes_its_training_job_with_it(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    from conftest import process_alive

    train = write_tsv(tmp_path / "t.tsv", toy_sentences(96, 1))
    (tmp_path / "spec.json").write_text(json.dumps(tiny_spec(tiny_model_dir, {"train": str(train)}, tmp_path / "unused", epochs=500)))
    command = [os.path.join(os.path.dirname(sys.executable), "bertbridge"), "run-local", str(tmp_path / "spec.json"),
               "--base-dir", str(tmp_path / "job")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs: list[int] = []
    try:
        deadline = time.time() + 60
        while not (jobs := _children(proc.pid)):
            assert proc.poll() is None and time.time() < deadline, "run-local started no job"
            time.sleep(0.05)
        proc.kill()  # kill -9: no chance to clean up
        proc.wait(timeout=10)
        deadline = time.time() + 10
        while any(process_alive(pid) for pid in jobs) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(process_alive(pid) for pid in jobs), "the training job outlived run-local"
    finally:
        proc.kill()
        for pid in filter(process_alive, jobs):  # the test failed: do not leave the job running
            os.kill(pid, signal.SIGKILL)


def test_run_local_entry_point_starts_its_instances_workers(spec_file, tmp_path):
    """An instance whose container did not start workers (no torchrun, TF_CONFIG or DMLC_*) starts
    them itself: each reruns the entry point as one rank; rank 0 writes the model and checkpoints."""
    pytest.importorskip("torch")
    run = bertbridge.run_local(spec_file, backend="pytorch", base_dir=tmp_path / "job", stream_output=False,
                               overrides=["distribution.processes_per_host=2", "training.epochs=2"])
    assert run.returncode == 0, run.failure
    metrics = json.loads((tmp_path / "job" / "output" / "data" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and "accuracy" in metrics
    assert tarfile.is_tarfile(run.model_tar)
    assert sorted(p.name for p in (tmp_path / "job" / "checkpoints").iterdir())  # written by rank 0


def test_a_tuning_jobs_hyperparameters_become_the_trials_spec(tmp_path):
    """A tuning job passes plain strings, the SDK's sagemaker_* keys and SageMaker's _tuning_objective_metric."""
    env = _sm_tree(
        tmp_path, {"training": {"epochs": 5}},
        {"training.learning_rate": "0.00031", "training.epochs": "2", "training.early_stopping.metric": "accuracy",
         "task.long_text.aggregate": '"max"',  # a categorical range's value, JSON-encoded
         "_tuning_objective_metric": "objective_accuracy", "backend": "pytorch",
         "sagemaker_submit_directory": "s3://b/sourcedir.tar.gz", "sagemaker_program": "sagemaker_entry.py"},
        {"spec": {}, "train": {"t.tsv": "text\tlabel\na\tx\n"}},
    )
    spec = build_spec(Environment.from_env([], env))
    assert (spec.training.learning_rate, spec.training.epochs, spec.training.early_stopping.metric) == (0.00031, 2, "accuracy")
    assert spec.task.long_text.aggregate == "max"
