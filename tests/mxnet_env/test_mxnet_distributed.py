"""Data-parallel training on MXNet's dist_sync kvstore (DMLC parameter server), in the MXNet
environment: bertbridge's local launcher starts a scheduler, a server and the workers."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("bertbridge.backends.mxnet.model")  # MXNet through its numpy shim

from conftest import TINY_CONFIG, process_alive, saved_metrics, saved_weights, tiny_spec  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.backends.mxnet import launch  # noqa: E402
from bertbridge.core.distributed.collective import Cluster  # noqa: E402


def test_two_workers_train_the_single_process_model_and_leave_nothing_behind(numpy_model_dir, toy_data, tmp_path, capfd):
    """The key test: same weights as one process; then no scheduler, server or worker is left, and
    the scheduler's port is free again."""
    assert TINY_CONFIG["hidden_dropout_prob"] == TINY_CONFIG["attention_probs_dropout_prob"] == 0.0  # no dropout noise
    model = numpy_model_dir
    # 2 epochs of 14 steps; log_interval 5 and eval_interval 6 exercise the loss sum and the shared
    # early-stopping decision; 7-example batches split 4 + 3 between the workers
    common = dict(epochs=2, batch_size=7, log_interval=5, eval_interval=6)
    single = bertbridge.train(tiny_spec(model, toy_data, tmp_path / "one", **common), backend="mxnet")
    spec = tiny_spec(model, toy_data, tmp_path / "two", **common)
    spec["distribution"] = {"processes_per_host": 2, "timeout": 120}
    capfd.readouterr()
    double = bertbridge.train(spec, backend="mxnet")
    err = capfd.readouterr().err
    started = dict(re.findall(r"bertbridge: started (rank \d+|the \w+) \(pid (\d+)\)", err))
    assert set(started) == {"the scheduler", "the server", "rank 0", "rank 1"}, err[-3000:]
    assert not [name for name, pid in started.items() if process_alive(int(pid))]
    port = int(re.search(r"ports (\d+)", err).group(1))
    with socket.socket() as sock:  # nothing listens on the scheduler's port any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    one, two = saved_weights(tmp_path / "one"), saved_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    worst = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    print(f"largest difference between the 1- and 2-process weights: {worst:.3g}")
    assert worst < 1e-4, worst
    start = saved_weights(model)
    assert max(float(np.abs(one["bert." + k] - start[k]).max()) for k in start) > 1e-3  # it trained
    assert saved_metrics(tmp_path / "two")["world_size"] == 2.0 and saved_metrics(tmp_path / "one")["world_size"] == 1.0
    assert double.metrics["accuracy"] == pytest.approx(single.metrics["accuracy"])


def test_plan_for_two_hosts_of_two_workers(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plans = [launch.process_plan(Cluster(hosts=("algo-1", "algo-2"), host_index=h, processes_per_host=2, base_port=29500))
             for h in range(2)]
    assert [[p.role for p in plan] for plan in plans] == [
        ["scheduler", "server", "worker", "worker"], ["server", "worker", "worker"]]
    assert [[p.rank for p in plan if p.role == "worker"] for plan in plans] == [[0, 1], [2, 3]]
    for h, plan in enumerate(plans):
        for proc in plan:
            env = proc.env
            assert env["DMLC_ROLE"] == proc.role
            assert (env["DMLC_PS_ROOT_URI"], env["DMLC_PS_ROOT_PORT"]) == ("algo-1", "29500")
            assert (env["DMLC_NUM_SERVER"], env["DMLC_NUM_WORKER"]) == ("2", "4")
            assert env["DMLC_NODE_HOST"] == f"algo-{h + 1}"
            if proc.role == "worker":
                assert proc.module is None and env["BERTBRIDGE_RANK"] == str(proc.rank)
                assert env["BERTBRIDGE_LOCAL_RANK"] == str(proc.rank - 2 * h) and int(env["OMP_NUM_THREADS"]) >= 1
                assert launch.launched_by_dmlc(env)
            else:
                assert proc.module == "bertbridge.backends.mxnet.ps_node" and "BERTBRIDGE_RANK" not in env
                assert not launch.launched_by_dmlc(env)
    assert not launch.launched_by_dmlc({}) and launch.planned_rank({}) is None


WORKER = '''
import json, os, sys
import numpy as np
from bertbridge.backends.mxnet.distributed import MXCollective, nd

c = MXCollective(60)
r = c.rank
out = {"rank": r, "world_size": c.world_size}
out["sum"] = c.all_reduce_sum([(r + 1) / 3, 16777217.0 * (r + 1), -1e-20 * (r + 1), float(r)]).tolist()
out["again"] = c.all_reduce_sum([r + 0.25]).tolist()  # the key is reused: this round's sum, not a running one
small, big = nd.array(np.full((3,), r + 1.0)), nd.array(np.full((1100, 1000), 10.0 * (r + 1)))  # big: sliced over servers
c.sum_arrays("g", [small, big])
out["arrays"] = [float(small.asnumpy().min()), float(small.asnumpy().max()), float(big.asnumpy().min()), float(big.asnumpy().max())]
c.sum_arrays("g", [small, big])  # 2 * (1 + 2)
out["arrays2"] = [float(small.asnumpy()[0]), float(big.asnumpy()[0, 0])]
weights = [nd.array(np.full((2,), 100.0 + r))]
c.broadcast_arrays("w", weights)
out["broadcast"] = weights[0].asnumpy().tolist()
out["flag"] = c.broadcast_flag(r == 0)
with open(os.path.join(sys.argv[1], f"rank{r}.json"), "w") as f:
    json.dump(out, f)
c.close()
'''


def test_the_kvstore_sums_over_workers(tmp_path):
    """Two workers, one server, one scheduler: pushes of a key come back as their sum (float32 arrays;
    float64 values exactly through all_reduce_sum), round after round; broadcasts take rank 0's values.
    Once the workers have closed their kvstores, the scheduler and the server exit by themselves."""
    from bertbridge.core.distributed.collective import local_cluster

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = []
    try:
        for proc in launch.process_plan(local_cluster(2, timeout=60)):
            argv = ["-m", proc.module] if proc.module else [str(script), str(tmp_path)]
            procs.append((proc, subprocess.Popen([sys.executable, *argv], env={**os.environ, **proc.env})))
        codes = {proc.name: child.wait(timeout=120) for proc, child in procs}
    finally:
        for _, child in procs:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert codes == {"the scheduler": 0, "the server": 0, "rank 0": 0, "rank 1": 0}
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    expected = np.zeros(4)
    for r in range(2):
        expected += np.array([(r + 1) / 3, 16777217.0 * (r + 1), -1e-20 * (r + 1), float(r)])
    for r, got in enumerate(results):
        assert got["rank"] == r and got["world_size"] == 2
        assert got["sum"] == expected.tolist()  # exact float64, the same on both
        assert got["again"] == [1.5]
        assert got["arrays"] == [3.0, 3.0, 30.0, 30.0] and got["arrays2"] == [6.0, 60.0]
        assert got["broadcast"] == [100.0, 100.0] and got["flag"] is True


FAILING_WORKER = '''
import sys
from bertbridge.backends.mxnet.distributed import MXCollective

c = MXCollective(60)
if c.rank == 1:
    sys.exit(3)  # dies while rank 0 waits for it in a collective
c.all_reduce_sum([1.0])
'''


def test_a_dead_worker_fails_the_job_at_once_naming_its_rank(tmp_path):
    from bertbridge.core.distributed.collective import local_cluster
    from bertbridge.core.distributed.launcher import run_processes
    from bertbridge.core.errors import DistributedError

    script = tmp_path / "worker.py"
    script.write_text(FAILING_WORKER)
    lines: list[str] = []
    tick = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank 1 \(pid \d+\) exited with status 3"):
        run_processes(launch.process_plan(local_cluster(2, timeout=60)), [str(script)], announce=lines.append, grace=5)
    assert time.monotonic() - tick < 40  # not the 60 s timeout: the failing worker left without waiting for its peers
    pids = [int(m) for line in lines for m in re.findall(r"\(pid (\d+)\)", line)]
    assert len(pids) == 4 and not [p for p in pids if process_alive(p)]


def test_joining_a_job_that_never_forms_fails_within_the_timeout():
    env = {**os.environ, "DMLC_ROLE": "worker", "DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_NUM_SERVER": "1",
           "DMLC_NUM_WORKER": "2", "DMLC_NODE_HOST": "127.0.0.1", "BERTBRIDGE_RANK": "1"}
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        env["DMLC_PS_ROOT_PORT"] = str(sock.getsockname()[1])
    code = "from bertbridge.backends.mxnet.distributed import MXCollective; MXCollective(3)"
    tick = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - tick < 60
    assert run.returncode == 1 and "DistributedError: rank 1: could not join the dist_sync kvstore" in run.stderr, run.stderr


STUCK_WORKER = '''
import time
from bertbridge.backends.mxnet.distributed import MXCollective

c = MXCollective(3)
if c.rank == 1:
    time.sleep(120)  # alive but never reaches the collective
c.all_reduce_sum([1.0])
'''


def test_a_collective_waits_no_longer_than_the_timeout(tmp_path, capfd):
    from bertbridge.core.distributed.collective import local_cluster
    from bertbridge.core.distributed.launcher import run_processes
    from bertbridge.core.errors import DistributedError

    script = tmp_path / "worker.py"
    script.write_text(STUCK_WORKER)
    tick = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank 0 \(pid \d+\) exited with status 1"):
        run_processes(launch.process_plan(local_cluster(2, timeout=3)), [str(script)], announce=lambda line: None, grace=5)
    assert time.monotonic() - tick < 60
    assert "rank 0 waited more than distribution.timeout=3 s for a sum of logged values" in capfd.readouterr().err
