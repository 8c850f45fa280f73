"""bertbridge sagemaker train against moto: the exact CreateTrainingJob request and what was uploaded."""

import json
import re

import pytest

pytest.importorskip("sagemaker.train")
moto = pytest.importorskip("moto")

import bertbridge  # noqa: E402
from conftest import tiny_spec  # noqa: E402


@pytest.fixture()
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "SAGEMAKER_VALIDATE_ROLE": "false"}.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        import boto3

        session = boto3.Session(region_name="us-east-1")
        role = session.client("iam").create_role(RoleName="SageMakerRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        captured = {}
        session.events.register("provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: captured.update(params))
        yield session, role, captured


def test_train_job_request(aws, tiny_model_dir, toy_data, tmp_path):
    from bertbridge.core.sagemaker_launch import METRIC_DEFINITIONS, launch_training

    session, role, captured = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")))
    job = launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="pytorch", spot=True,
                          overrides=["training.epochs=2"], max_run_seconds=3600, boto_session=session)
    req = captured
    assert req["AlgorithmSpecification"]["TrainingImage"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3-cpu-py311"
    assert job.image == req["AlgorithmSpecification"]["TrainingImage"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert {"train", "validation", "spec", "model", "code"} <= set(channels)
    assert req["HyperParameters"]["backend"].strip('"') == "pytorch"
    assert json.loads(req["HyperParameters"]["training.epochs"]) in (2, "2")
    assert req["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge" and req["ResourceConfig"]["InstanceCount"] == 1
    assert req["EnableManagedSpotTraining"] is True
    assert req["CheckpointConfig"] == {"S3Uri": f"{job.s3_prefix}/checkpoints", "LocalPath": "/opt/ml/checkpoints"}
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert req["RoleArn"] == role
    metrics = {m["Name"]: m["Regex"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics == {m["Name"]: m["Regex"] for m in METRIC_DEFINITIONS}
    assert re.search(metrics["eval_accuracy"], "eval_accuracy=0.8125  # eval, step 40, epoch 2.00").group(1) == "0.8125"

    s3 = session.client("s3")
    bucket, _, prefix = job.s3_prefix[len("s3://"):].partition("/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert f"{prefix}/data/train/train.tsv" in keys and f"{prefix}/model/model.safetensors" in keys
    uploaded_spec = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/spec/spec.json")["Body"].read())
    assert uploaded_spec["data"]["train"] is None  # data travels in channels, not as local paths


def test_cli_launch(aws, tiny_model_dir, toy_data, tmp_path, capsys, monkeypatch):
    import boto3

    from bertbridge.core.cli import main

    session, role, captured = aws
    monkeypatch.setattr(boto3, "Session", lambda region_name=None: session)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")))
    assert main(["sagemaker", "train", str(spec), "--role", role, "--instance-type", "ml.g5.xlarge", "--backend", "tensorflow"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["image"].endswith("tensorflow-training:2.16-gpu-py310")
    assert captured["AlgorithmSpecification"]["TrainingImage"] == printed["image"]
    assert "EnableManagedSpotTraining" not in captured or captured["EnableManagedSpotTraining"] is False


def test_launch_refuses_what_it_cannot_run(aws, tiny_model_dir, toy_data, tmp_path):
    from bertbridge.core.sagemaker_launch import launch_training

    session, role, _ = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")))
    with pytest.raises(bertbridge.BertbridgeError, match="no SageMaker training image"):
        launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="onnx", boto_session=session)
    with pytest.raises(bertbridge.BertbridgeError, match="instance_count > 1 needs distributed training"):
        launch_training(spec, role=role, instance_type="ml.m5.xlarge", instance_count=2, boto_session=session)


def test_shipped_source_registers_backends_without_an_install(tmp_path):
    """The job's source folder carries bertbridge's dist-info, so entry points work in the container."""
    import subprocess
    import sys

    from bertbridge.core.registry import backends
    from bertbridge.core.sagemaker_launch import _source_dir

    _source_dir(tmp_path, backends().get("pytorch"))
    assert (tmp_path / "sagemaker_entry.py").is_file() and "transformers" in (tmp_path / "requirements.txt").read_text()
    code = "import importlib.metadata as m; print(sorted(e.name for e in m.entry_points(group='bertbridge.backends')))"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert "pytorch" in out.stdout and "tensorflow" in out.stdout, out.stderr
