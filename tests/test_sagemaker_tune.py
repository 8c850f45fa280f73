"""bertbridge sagemaker tune against moto: the exact CreateHyperParameterTuningJob request, and the objective's
regex reading a run's log as SageMaker does."""

import json
import re

import pytest

pytest.importorskip("sagemaker.train")
pytest.importorskip("moto")

from conftest import tiny_spec  # noqa: E402
from test_sagemaker_launch import aws  # noqa: E402,F401  (the moto fixture)

import bertbridge  # noqa: E402

PARAMETERS = {"training.learning_rate": {"log_uniform": [1e-4, 5e-3]}, "training.epochs": {"choice": [2, 3]},
              "training.warmup_ratio": {"uniform": [0, 0.2]}, "training.batch_size": {"int_uniform": [8, 16]},
              "task.long_text.aggregate": {"choice": ["mean", "max"]}}


def _spec_file(tmp_path, tiny_model_dir, toy_data, **tuning):
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")
    spec["task"] = {"long_text": {}}
    spec["tuning"] = {"trials": 6, "max_parallel": 2, "parameters": PARAMETERS, **tuning}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _capture(session) -> dict:
    captured = {}
    session.events.register("provide-client-params.sagemaker.CreateHyperParameterTuningJob",
                            lambda params, **kw: captured.update(params))
    return captured


def test_tuning_job_request(aws, tiny_model_dir, toy_data, tmp_path):  # noqa: F811
    from bertbridge.core.sagemaker.launch import METRIC_DEFINITIONS
    from bertbridge.core.sagemaker.tune import launch_tuning

    session, role, _ = aws
    captured = _capture(session)
    session.client("s3").create_bucket(Bucket="team-bucket")
    tuning = launch_tuning(_spec_file(tmp_path, tiny_model_dir, toy_data), role=role, instance_type="ml.m5.xlarge",
                           backend="pytorch", job_name="sst2-search", bucket="team-bucket", boto_session=session)
    config = captured["HyperParameterTuningJobConfig"]
    assert captured["HyperParameterTuningJobName"] == tuning.tuning_job == "sst2-search"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "objective_accuracy"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto" and config["RandomSeed"] == 7
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "training.learning_rate", "MinValue": "0.0001", "MaxValue": "0.005", "ScalingType": "Logarithmic"},
            {"Name": "training.warmup_ratio", "MinValue": "0.0", "MaxValue": "0.2", "ScalingType": "Linear"}],
        "IntegerParameterRanges": [{"Name": "training.batch_size", "MinValue": "8", "MaxValue": "16", "ScalingType": "Linear"}],
        "CategoricalParameterRanges": [{"Name": "training.epochs", "Values": ["2", "3"]},
                                       {"Name": "task.long_text.aggregate", "Values": ['"mean"', '"max"']}],
    }
    job = captured["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("pytorch-training:2.3-cpu-py311")
    definitions = {m["Name"]: m["Regex"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert definitions == {**{m["Name"]: m["Regex"] for m in METRIC_DEFINITIONS}, "objective_accuracy": definitions["objective_accuracy"]}
    static = job["StaticHyperParameters"]
    assert static["backend"].strip('"') == "pytorch" and static["training.early_stopping.metric"].strip('"') == "accuracy"
    assert not set(PARAMETERS) & set(static)  # searched fields come from the ranges only
    assert "CheckpointConfig" not in job  # trials never share (and resume from) one checkpoint folder
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert set(channels) >= {"train", "validation", "spec", "model", "sm_drivers"}
    assert all(uri.startswith("s3://team-bucket/") for uri in channels.values())  # --bucket holds the SDK's uploads too
    assert static["sagemaker_submit_directory"].strip('"').startswith("s3://team-bucket/")
    described = session.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="sst2-search")
    assert described["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6


def test_the_objective_reads_each_evaluation_and_ends_with_the_saved_models_value(tiny_model_dir, toy_data, tmp_path, capfd):
    from bertbridge.core.sagemaker.tune import objective_definition

    regex = re.compile(objective_definition("accuracy")["Regex"])
    log = ["eval_accuracy=0.75  # eval, step 10", "eval_accuracy_top2=0.9", "eval_accuracy=0.5  # eval, step 20",
           "saved_accuracy=0.75  # saved, step 20", "test_accuracy=0.7"]
    assert [m.group(1) for line in log if (m := regex.match(line))] == ["0.75", "0.5", "0.75"]  # the last is the job's
    model = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out", epochs=6), backend="pytorch")
    values = [float(m.group(1)) for line in capfd.readouterr().out.splitlines() if (m := regex.match(line))]
    assert len(values) == 7 and len(set(values)) > 1  # six evaluations, then saved_accuracy
    assert values[-1] == pytest.approx(model.metrics["accuracy"]) == pytest.approx(max(values[:6]))


def test_cli_tune_and_its_refusals(aws, tiny_model_dir, toy_data, tmp_path, capsys, monkeypatch):  # noqa: F811
    import boto3

    from bertbridge.core.cli import main

    session, role, _ = aws
    captured = _capture(session)
    monkeypatch.setattr(boto3, "Session", lambda region_name=None: session)
    spec = _spec_file(tmp_path, tiny_model_dir, toy_data, pruning=False)
    assert main(["sagemaker", "tune", str(spec), "--role", role, "--instance-type", "ml.m5.xlarge", "--backend", "tensorflow",
                 "--strategy", "Random", "--set", "tuning.trials=3"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["tuning_job"] == captured["HyperParameterTuningJobName"] and printed["objective"] == "objective_accuracy"
    config = captured["HyperParameterTuningJobConfig"]
    assert (config["Strategy"], config["TrainingJobEarlyStoppingType"]) == ("Random", "Off")
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 3
    assert captured["TrainingJobDefinition"]["AlgorithmSpecification"]["TrainingImage"].endswith("tensorflow-training:2.16-cpu-py310")
    no_validation = tmp_path / "no_validation.json"
    no_validation.write_text(json.dumps({**json.loads(spec.read_text()), "data": {**json.loads(spec.read_text())["data"], "validation": None}}))
    assert main(["sagemaker", "tune", str(no_validation), "--role", role, "--instance-type", "ml.m5.xlarge"]) == 2
    assert "tuning needs data.validation" in capsys.readouterr().err
    assert main(["sagemaker", "tune", str(spec), "--role", role, "--instance-type", "ml.m5.xlarge", "--job-name", "x" * 33]) == 2
    assert "a tuning job name has 1 to 32 letters" in capsys.readouterr().err
