"""Data-parallel training: the spec section, sharding, the local launcher (teardown on
success, failure and Ctrl-C) and the PyTorch backend on DistributedDataParallel/gloo.

TensorFlow's and MXNet's engines have their own files (test_tensorflow_distributed.py,
mxnet_env/test_mxnet_distributed.py). Every run here uses a tiny random BERT; the
accuracy-at-scale comparison on SST-2 is bench/train_distributed.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG, process_alive, saved_metrics, saved_weights, tiny_spec, toy_sentences, write_tsv

import bertbridge
from bertbridge.core.distributed.collective import Cluster, SingleProcess, local_cluster, sagemaker_cluster, shard
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.spec import TaskSpec

pytest.importorskip("torch")
# The tiny BERT has no dropout, so data-parallel workers must reproduce one process exactly.
assert TINY_CONFIG["hidden_dropout_prob"] == TINY_CONFIG["attention_probs_dropout_prob"] == 0.0


# -- spec and sharding ----------------------------------------------------------

def test_distribution_section_defaults_to_one_process_and_checks_its_fields():
    spec = TaskSpec.from_dict({})
    assert (spec.distribution.processes_per_host, spec.distribution.hosts, spec.distribution.world_size) == (1, 1, 1)
    two = spec.with_overrides(["distribution.processes_per_host=2", "distribution.hosts=3"])
    assert two.distribution.world_size == 6
    with pytest.raises(SpecError, match=r"distribution\.processes_per_host must be >= 1"):
        TaskSpec.from_dict({"distribution": {"processes_per_host": 0}})
    with pytest.raises(SpecError, match=r"distribution\.timeout must be at least 10"):
        TaskSpec.from_dict({"distribution": {"timeout": 1}})
    with pytest.raises(SpecError, match=r"distribution\.proceses_per_host is not a known field\. Did you mean 'processes_per_host'"):
        TaskSpec.from_dict({"distribution": {"proceses_per_host": 2}})


class _Rank(SingleProcess):
    def __init__(self, rank, world):
        self.rank, self.world_size = rank, world


def test_shards_split_every_batch_once_across_ranks():
    for size in (1, 5, 8, 9):
        index = np.arange(size) * 3
        parts = [shard(index, _Rank(r, 3)) for r in range(3)]
        assert np.array_equal(np.concatenate(parts), index)  # each example exactly once, in order
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(np.arange(4), SingleProcess()).tolist() == [0, 1, 2, 3]


def test_clusters_give_every_host_the_same_ports_and_ranks():
    one = local_cluster(2)
    assert one.hosts == ("127.0.0.1",) and one.port(0) != one.port(1) and one.ports == [one.port(0), one.port(1)]
    env = {"SM_HOSTS": '["algo-2", "algo-1"]', "SM_CURRENT_HOST": "algo-2"}
    sm = sagemaker_cluster(2, 300, 29500, env)
    assert (sm.hosts, sm.host_index, sm.world_size, sm.rank(1), sm.port(3)) == (("algo-1", "algo-2"), 1, 4, 3, 29503)
    with pytest.raises(SpecError, match="SM_CURRENT_HOST='algo-9' is not in SM_HOSTS"):
        sagemaker_cluster(2, 300, 29500, {**env, "SM_CURRENT_HOST": "algo-9"})


def test_torchrun_environment_is_what_each_worker_gets():
    from bertbridge.backends.pytorch.launch import launched_by_torchrun, process_plan

    plan = process_plan(Cluster(hosts=("a", "b"), host_index=1, processes_per_host=2, base_port=29500))
    assert [(p.rank, p.env["RANK"], p.env["LOCAL_RANK"]) for p in plan] == [(2, "2", "0"), (3, "3", "1")]
    assert {p.env["MASTER_ADDR"] for p in plan} == {"a"} and {p.env["MASTER_PORT"] for p in plan} == {"29500"}
    assert {p.env["WORLD_SIZE"] for p in plan} == {"4"}
    assert launched_by_torchrun(plan[0].env) and not launched_by_torchrun({"RANK": "0"})


# -- what a data-parallel run refuses up front ------------------------------------

def test_a_local_run_cannot_span_hosts_or_record_attention(tiny_model_dir, toy_data, tmp_path):
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")
    with pytest.raises(SpecError, match=r"distribution\.hosts is 2: bertbridge starts the processes of one machine only.*sagemaker train"):
        bertbridge.train(spec, backend="pytorch", overrides=["distribution.hosts=2"])
    with pytest.raises(NotSupportedError, match="debugger.attention records single-process runs only"):
        bertbridge.train({**spec, "debugger": {"attention": True}}, backend="pytorch",
                         overrides=["distribution.processes_per_host=2"])
    assert not (tmp_path / "out").exists()


# -- PyTorch DDP over gloo, through the local launcher -----------------------------

def test_two_pytorch_workers_train_the_same_model_as_one_process(tiny_model_dir, toy_data, tmp_path):
    model = tiny_model_dir
    # 96 rows, batch 8 and accumulation 2 (16 per step): the last batch of an epoch is odd-sized.
    spec = tiny_spec(model, {**toy_data, "train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(91, seed=1)))},
                     tmp_path / "one", epochs=2, gradient_accumulation_steps=2)
    one = bertbridge.train(spec, backend="pytorch")
    two = bertbridge.train(spec, backend="pytorch", output_dir=tmp_path / "two",
                           overrides=["distribution.processes_per_host=2"])
    assert two.path == (tmp_path / "two").resolve()
    a, b = saved_weights(tmp_path / "one"), saved_weights(tmp_path / "two")
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    assert saved_metrics(tmp_path / "two")["world_size"] == 2 and saved_metrics(tmp_path / "one")["world_size"] == 1
    assert two.metrics["accuracy"] == one.metrics["accuracy"]


def test_question_answering_trains_data_parallel_too(tiny_model_dir, tmp_path):
    from test_qa import make_squad

    model = tiny_model_dir
    make_squad(tmp_path / "train.json", 40, seed=1)
    make_squad(tmp_path / "dev.json", 12, seed=2)
    spec = {"task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8},
            "data": {"train": str(tmp_path / "train.json"), "validation": str(tmp_path / "dev.json")},
            "model": {"name": str(model)}, "backend": "pytorch", "output_dir": str(tmp_path / "one"),
            "training": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "max_seq_length": 48, "seed": 3}}
    bertbridge.train(spec)
    qa = bertbridge.train(spec, output_dir=tmp_path / "two", overrides=["distribution.processes_per_host=2"])
    a, b = saved_weights(tmp_path / "one"), saved_weights(tmp_path / "two")
    diffs = {k: float(np.abs(a[k] - b[k]).max()) for k in a}
    # A softmax over positions ignores a constant shift, so qa_outputs.bias and the last LayerNorm
    # bias have a true gradient of 0: Adam turns the summation-order noise in it into lr-sized steps.
    shift_invariant = {"qa_outputs.bias", "bert.encoder.layer.1.output.LayerNorm.bias"}
    assert max(v for k, v in diffs.items() if k not in shift_invariant) < 1e-5
    one_metrics = saved_metrics(tmp_path / "one")
    assert (qa.metrics["exact"], qa.metrics["f1"]) == (one_metrics["exact"], one_metrics["f1"]) and saved_metrics(tmp_path / "two")["world_size"] == 2


def test_torchrun_itself_can_launch_the_workers(tiny_model_dir, toy_data, tmp_path):
    """What SageMaker's PyTorch container does: torchrun starts `bertbridge train` per rank."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out", epochs=1)))
    env = {k: v for k, v in os.environ.items() if k != "BERTBRIDGE_JOB"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), "-m", "bertbridge", "train", str(spec_file), "--backend", "pytorch"],
        capture_output=True, text=True, timeout=300, env={**env, "BERTBRIDGE_PROGRESS": "0"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count(f"model_dir={(tmp_path / 'out').resolve()}") == 1  # rank 0 reports, rank 1 is quiet
    assert saved_metrics(tmp_path / "out")["world_size"] == 2


# -- the launcher: teardown on failure and Ctrl-C ----------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether any socket on this machine listens on ``port`` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A = LISTEN
                return True
    return False


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a suite started in the background (``make test &``) passes SIGINT
    on ignored, and Python then never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Job:
    """`bertbridge train` with 2 local workers, run as a child so a test can kill parts of it."""

    def __init__(self, spec: dict, tmp_path: Path, backend: str = "pytorch", extra_env: dict = ()) -> None:
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(spec))
        self.out, self.err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {**{k: v for k, v in os.environ.items() if k != "BERTBRIDGE_JOB"}, **dict(extra_env)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bertbridge", "train", str(spec_file), "--backend", backend,
             "--set", "distribution.processes_per_host=2"],
            stdout=self.out.open("w"), stderr=self.err.open("w"), env={**env, "BERTBRIDGE_PROGRESS": "0"},
            preexec_fn=_default_sigint,
        )

    def wait_for_training(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while "train_loss=" not in self.out.read_text():
            assert self.proc.poll() is None, self.err.read_text()[-3000:]
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)

    @property
    def pids(self) -> dict[str, int]:
        """``rank 0``, ``rank 1`` (and helpers such as ``the server``) -> pid."""
        return {m[0]: int(m[1]) for m in re.findall(r"started (rank \d+|the \w+) \(pid (\d+)\)", self.err.read_text())}

    @property
    def ports(self) -> list[int]:
        found = re.search(r"ports ([\d, ]+)\)", self.err.read_text())
        return [int(p) for p in found.group(1).split(", ")]


def _long_spec(tiny_model_dir, toy_data, tmp_path) -> dict:
    return tiny_spec(tiny_model_dir, toy_data, tmp_path / "out", epochs=500, log_interval=1)


def _engine_env(backend: str) -> dict:
    """What running ``backend`` from this environment needs (MXNet: its own interpreter)."""
    if backend == "tensorflow":
        pytest.importorskip("tensorflow")
    if backend != "mxnet":
        return {}
    python = os.environ.get("BERTBRIDGE_MXNET_PYTHON") or str(Path(__file__).resolve().parents[1] / ".venv-mxnet" / "bin" / "python")
    if not Path(python).is_file():
        pytest.skip("no MXNet environment: run make mxnet-env (make test builds it)")
    return {"BERTBRIDGE_MXNET_PYTHON": python}


@pytest.mark.parametrize("backend", ["pytorch", "tensorflow", "mxnet"])
def test_a_killed_worker_fails_the_whole_job_fast_and_names_its_rank(backend, tiny_model_dir, toy_data, tmp_path):
    """DDP/gloo, MultiWorkerMirroredStrategy and the dist_sync kvstore alike: no hang, the rank named."""
    job = _Job(_long_spec(tiny_model_dir, toy_data, tmp_path), tmp_path, backend, _engine_env(backend))
    job.wait_for_training()
    pids, ports = job.pids, job.ports
    assert {"rank 0", "rank 1"} <= set(pids) and _listening(ports[0])
    killed = time.monotonic()
    os.kill(pids["rank 1"], signal.SIGKILL)
    code = job.proc.wait(timeout=60)
    assert time.monotonic() - killed < 60
    err = job.err.read_text()
    assert code == 2
    assert f"rank 1 (pid {pids['rank 1']}) was killed by SIGKILL" in err
    assert not any(process_alive(pid) for pid in pids.values())  # rank 0 was stopped, not orphaned
    assert not any(_listening(port) for port in ports)
    assert not (tmp_path / "out").exists()  # no half-written model


def test_ctrl_c_stops_every_worker_and_releases_the_ports(tiny_model_dir, toy_data, tmp_path):
    job = _Job(_long_spec(tiny_model_dir, toy_data, tmp_path), tmp_path)
    job.wait_for_training()
    pids, ports = job.pids, job.ports
    job.proc.send_signal(signal.SIGINT)
    assert job.proc.wait(timeout=60) == 130
    assert "interrupted" in job.err.read_text()
    assert not any(process_alive(pid) for pid in pids.values())
    assert not any(_listening(port) for port in ports)
    with socket.socket() as sock:  # and the port can be taken again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", ports[0]))


def test_a_worker_that_fails_on_bad_data_ends_the_job_with_its_error(tiny_model_dir, toy_data, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nfine movie\tpositive\nodd row\tneutral\n")
    job = _Job(tiny_spec(tiny_model_dir, {**toy_data, "train": str(bad)}, tmp_path / "out"), tmp_path)
    assert job.proc.wait(timeout=120) == 2
    err = job.err.read_text()
    assert "neutral" in err and "exited with status 2" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_workers_do_not_outlive_a_launcher_killed_outright(tiny_model_dir, toy_data, tmp_path):
    job = _Job(_long_spec(tiny_model_dir, toy_data, tmp_path), tmp_path)
    job.wait_for_training()
    pids = job.pids
    job.proc.kill()  # SIGKILL: no chance to clean up; the kernel kills the workers (PR_SET_PDEATHSIG)
    job.proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(process_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(pid) for pid in pids.values())
