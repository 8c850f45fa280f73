"""TensorFlow data-parallel training: MultiWorkerMirroredStrategy configured by TF_CONFIG."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_CONFIG, saved_weights, tiny_spec

from bertbridge.backends.tensorflow.launch import launched_by_tf_config, parse_tf_config, process_plan
from bertbridge.core.distributed.collective import WORKER, Cluster, free_port
from bertbridge.core.errors import DistributedError


def _tf_config(cluster, task=None):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, **({"task": task} if task is not None else {})})}


# -- TF_CONFIG, pure (no TensorFlow) ----------------------------------------------
def test_process_plan_for_two_hosts_of_two_workers():
    cluster = Cluster(hosts=("algo-1", "algo-2"), host_index=1, processes_per_host=2, base_port=7000)
    plan = process_plan(cluster)
    everyone = ["algo-1:7000", "algo-1:7001", "algo-2:7000", "algo-2:7001"]
    assert [p.role for p in plan] == [WORKER, WORKER]
    assert [p.rank for p in plan] == [2, 3]
    configs = [json.loads(p.env["TF_CONFIG"]) for p in plan]
    assert configs == [
        {"cluster": {"worker": everyone}, "task": {"type": "worker", "index": 2}},
        {"cluster": {"worker": everyone}, "task": {"type": "worker", "index": 3}},
    ]
    for proc in plan:
        parsed = parse_tf_config(proc.env)
        assert (parsed.rank, parsed.world_size, parsed.address) == (proc.rank, 4, everyone[proc.rank])
        assert parsed.local_rank == proc.rank - 2
        assert int(proc.env["TF_NUM_INTRAOP_THREADS"]) >= 1 and int(proc.env["TF_NUM_INTEROP_THREADS"]) >= 1


def test_process_plan_keeps_thread_settings_already_made(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    plan = process_plan(Cluster(hosts=("127.0.0.1",), host_index=0, processes_per_host=2, base_port=7100))
    assert {p.env["TF_NUM_INTRAOP_THREADS"] for p in plan} == {"3"}
    assert [json.loads(p.env["TF_CONFIG"])["cluster"]["worker"] for p in plan] == [["127.0.0.1:7100", "127.0.0.1:7101"]] * 2


def test_who_is_a_worker_and_which_rank():
    assert not launched_by_tf_config({})
    assert not launched_by_tf_config({"TF_CONFIG": ""})
    assert not launched_by_tf_config({"TF_CONFIG": "{}"})
    env = _tf_config({"chief": ["a:1"], "worker": ["a:2", "b:1"]}, {"type": "worker", "index": 1})
    assert launched_by_tf_config(env)
    parsed = parse_tf_config(env)
    assert (parsed.rank, parsed.world_size, parsed.local_rank, parsed.address) == (2, 3, 0, "b:1")
    chief = parse_tf_config(_tf_config({"chief": ["a:1"], "worker": ["a:2"]}, {"type": "chief", "index": 0}))
    assert (chief.rank, chief.world_size) == (0, 2)


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON list"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}}), '"task" is missing'),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}), "not in the cluster"),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}), "'chief' or 'worker'"),
        (json.dumps({"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}), "not \"host:port\""),
        (json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}), "must be a list"),
        (json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}), "ParameterServerStrategy"),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": -1}}), "non-negative integer"),
    ],
)
def test_malformed_tf_config_is_a_clear_error(raw, problem):
    with pytest.raises(DistributedError) as err:
        launched_by_tf_config({"TF_CONFIG": raw})
    assert "TF_CONFIG is malformed" in str(err.value) and problem in str(err.value)


def test_backend_declares_the_engine_without_importing_tensorflow():
    from bertbridge.core.plugins.registry import backends

    tf_backend = backends().get("tensorflow")
    assert "MultiWorkerMirroredStrategy" in tf_backend.distributed_engine
    assert tf_backend.sagemaker_distribution(2) is None
    assert tf_backend.launched_by_engine(_tf_config({"worker": ["h:1", "h:2"]}, {"type": "worker", "index": 1}))
    assert not tf_backend.launched_by_engine({})
    plan = tf_backend.process_plan(Cluster(hosts=("h",), host_index=0, processes_per_host=3, base_port=5000))
    assert [json.loads(p.env["TF_CONFIG"])["task"]["index"] for p in plan] == [0, 1, 2]


# -- the real thing: two local workers train exactly the one-process model ------------
def test_two_workers_train_the_same_model_as_one_process(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("tensorflow")
    import bertbridge

    assert TINY_CONFIG["hidden_dropout_prob"] == TINY_CONFIG["attention_probs_dropout_prob"] == 0.0  # no dropout noise
    model_dir = tiny_model_dir

    def spec(out, processes):
        # 96 examples in batches of 19: every batch splits unevenly (10 + 9) and one batch has a single
        # example, so in that step rank 1 joins the all-reduce with nothing to add
        s = tiny_spec(model_dir, toy_data, tmp_path / out, epochs=3, batch_size=19, log_interval=4)
        return {**s, "backend": "tensorflow", "distribution": {"processes_per_host": processes, "timeout": 120}}

    one = bertbridge.train(spec("one", 1))
    two = bertbridge.train(spec("two", 2))
    assert two.path == tmp_path / "two"
    single, parallel = saved_weights(one.path), saved_weights(two.path)
    assert single.keys() == parallel.keys()
    initial = saved_weights(model_dir)
    name = "encoder.layer.0.output.dense.weight"
    moved = float(np.abs(single["bert." + name] - initial[name]).max())
    assert moved > 1e-3  # training did change the weights, so agreeing below means something
    worst = max(float(np.abs(single[k] - parallel[k]).max()) for k in single)
    assert worst <= 1e-4, f"largest weight difference {worst}"
    metrics = {run: json.loads((m.path / "bertbridge.json").read_text())["metrics"] for run, m in (("one", one), ("two", two))}
    assert metrics["one"]["world_size"] == 1 and metrics["two"]["world_size"] == 2
    assert metrics["two"]["accuracy"] == pytest.approx(metrics["one"]["accuracy"])


def test_a_worker_whose_peer_never_comes_fails_in_time_naming_rank_and_addresses():
    pytest.importorskip("tensorflow")

    leader, missing = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {**os.environ, **_tf_config({"worker": [leader, missing]}, {"type": "worker", "index": 0})}
    code = ("from bertbridge.backends.tensorflow.distributed import TFCollective\n"
            "from bertbridge.core.errors import DistributedError\n"
            "try:\n    TFCollective(3)\nexcept DistributedError as e:\n    print('ERROR:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    error = next(line for line in out.stdout.splitlines() if line.startswith("ERROR:"))
    assert "rank 0" in error and leader in error and f"rank 1 at {missing}" in error and "within 3 s" in error
