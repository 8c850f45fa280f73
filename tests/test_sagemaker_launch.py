"""bertbridge sagemaker train against moto: the exact CreateTrainingJob request and what was uploaded."""

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("sagemaker.train")
moto = pytest.importorskip("moto")

from conftest import tiny_spec  # noqa: E402

import bertbridge  # noqa: E402


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
    from bertbridge.core.sagemaker.launch import METRIC_DEFINITIONS, launch_training

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
    from bertbridge.core.sagemaker.launch import launch_training

    session, role, _ = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")))
    with pytest.raises(bertbridge.BertbridgeError, match="only serves exported models"):
        launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="onnx", boto_session=session)
    two_hosts = tmp_path / "two_hosts.json"
    two_hosts.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "out"), "distribution": {"hosts": 2}}))
    with pytest.raises(bertbridge.BertbridgeError, match="instance_count is 3 but the spec's distribution.hosts is 2"):
        launch_training(two_hosts, role=role, instance_type="ml.m5.xlarge", instance_count=3, boto_session=session)


def _uploaded(session, job, name):
    s3 = session.client("s3")
    bucket, _, prefix = job.s3_prefix[len("s3://"):].partition("/")
    return {o["Key"][len(prefix) + 1:]: o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
            if o["Key"][len(prefix) + 1:].startswith(name)}, s3, bucket


def test_several_instances_run_pytorch_under_sagemakers_torchrun_driver(aws, tiny_model_dir, toy_data, tmp_path):
    from bertbridge.core.sagemaker.launch import launch_training

    session, role, captured = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "out"),
                                "distribution": {"processes_per_host": 2}}))
    job = launch_training(spec, role=role, instance_type="ml.m5.xlarge", instance_count=2, backend="pytorch",
                          boto_session=session)
    assert captured["ResourceConfig"]["InstanceCount"] == 2
    keys, s3, bucket = _uploaded(session, job, "spec/")
    uploaded_spec = json.loads(s3.get_object(Bucket=bucket, Key=keys["spec/spec.json"])["Body"].read())
    assert uploaded_spec["distribution"]["hosts"] == 2 and uploaded_spec["distribution"]["processes_per_host"] == 2
    drivers = next(c["DataSource"]["S3DataSource"]["S3Uri"] for c in captured["InputDataConfig"] if c["ChannelName"] == "sm_drivers")
    d_bucket, _, d_prefix = drivers[len("s3://"):].partition("/")
    distributed = json.loads(s3.get_object(Bucket=d_bucket, Key=f"{d_prefix}/distributed.json")["Body"].read())
    assert distributed["process_count_per_node"] == 2
    driver = s3.get_object(Bucket=d_bucket, Key=f"{d_prefix}/sm_train.sh")["Body"].read().decode()
    assert "torchrun_driver" in driver  # the container starts torchrun; each rank runs the entry point


def test_tensorflow_instances_start_their_own_workers(aws, tiny_model_dir, toy_data, tmp_path):
    from bertbridge.core.sagemaker.launch import launch_training

    session, role, captured = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "out"), "distribution": {"hosts": 3}}))
    job = launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="tensorflow", boto_session=session)
    assert captured["ResourceConfig"]["InstanceCount"] == 3  # from distribution.hosts
    keys, s3, bucket = _uploaded(session, job, "")
    assert not any("distributed" in k for k in keys)  # no torchrun driver config: the entry point launches


def test_shipped_source_registers_backends_without_an_install(tmp_path):
    """The job's source folder carries bertbridge's dist-info, so entry points work in the container."""
    import subprocess
    import sys

    from bertbridge.core.plugins.registry import backends
    from bertbridge.core.sagemaker.launch import _source_dir

    _source_dir(tmp_path, backends().get("pytorch"))
    assert (tmp_path / "sagemaker_entry.py").is_file() and "transformers" in (tmp_path / "requirements.txt").read_text()
    code = "import importlib.metadata as m; print(sorted(e.name for e in m.entry_points(group='bertbridge.backends')))"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert "pytorch" in out.stdout and "tensorflow" in out.stdout, out.stderr


def _model_folder(src, dest, backend="pytorch"):
    """A bertbridge model folder (weights + tokenizer + manifest) without training."""
    from bertbridge.core.io.artifacts import Manifest, copy_files, write_manifest

    dest.mkdir()
    copy_files(src, dest)
    write_manifest(dest, Manifest(task="text_classification", labels=("negative", "positive"), backend=backend,
                                  max_seq_length=32, lowercase=True))
    return dest


@pytest.fixture()
def aws_deploy(aws):
    session, role, _ = aws
    captured = {}
    for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        session.events.register(f"provide-client-params.sagemaker.{op}",
                                lambda params, op=op, **kw: captured.__setitem__(op, dict(params)))
    yield session, role, captured


def test_deploy_model_folder(aws_deploy, numpy_model_dir, tmp_path):
    import tarfile

    from bertbridge.core.sagemaker.deploy import deploy

    session, role, captured = aws_deploy
    folder = _model_folder(numpy_model_dir, tmp_path / "model")
    done = deploy(folder, role=role, instance_type="ml.m5.xlarge", instance_count=2, endpoint_name="sst2",
                  boto_session=session)
    model = captured["CreateModel"]
    container = model["PrimaryContainer"]
    assert model["ModelName"] == "sst2" and model["ExecutionRoleArn"] == role
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3-cpu-py311"
    assert container["ModelDataUrl"] == done.model_data and done.model_data.endswith("/sst2/model.tar.gz")
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    variant = captured["CreateEndpointConfig"]["ProductionVariants"][0]
    assert variant["ModelName"] == "sst2" and variant["InstanceType"] == "ml.m5.xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert captured["CreateEndpoint"] == {"EndpointName": "sst2", "EndpointConfigName": "sst2"}
    assert session.client("sagemaker").describe_endpoint(EndpointName="sst2")["EndpointName"] == "sst2"

    bucket, _, key = done.model_data[len("s3://"):].partition("/")
    tarball = tmp_path / "downloaded.tar.gz"
    session.client("s3").download_file(bucket, key, str(tarball))
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"bertbridge.json", "model.safetensors", "code/inference.py", "code/bertbridge/core/serving/handlers.py"} <= names


def test_deploy_tarball_and_s3_uri(aws_deploy, numpy_model_dir, tmp_path, capsys):
    from bertbridge.core.cli import main
    from bertbridge.core.plugins.registry import backends
    from bertbridge.core.sagemaker.local import pack_model

    session, role, captured = aws_deploy
    folder = _model_folder(numpy_model_dir, tmp_path / "model")
    tarball = pack_model(backends().get("pytorch"), folder, tmp_path / "model.tar.gz")
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(boto3, "Session", lambda region_name=None: session)
        assert main(["sagemaker", "deploy", str(tarball), "--role", role, "--instance-type", "ml.g4dn.xlarge"]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["backend"] == "pytorch" and printed["image"].endswith("pytorch-inference:2.3-gpu-py311")
        assert captured["CreateModel"]["PrimaryContainer"]["ModelDataUrl"] == printed["model_data"]
        # what AWS refuses is one clear line (exit 2), not a traceback
        assert main(["sagemaker", "deploy", str(tarball), "--role", role, "--instance-type", "ml.g5.xlarge",
                     "--endpoint-name", "refused"]) == 2
        assert "SageMaker refused CreateEndpointConfig" in capsys.readouterr().err

        # a model already in S3 (a training job's output) is used in place; the backend must be named
        assert main(["sagemaker", "deploy", printed["model_data"], "--role", role, "--instance-type", "ml.m5.xlarge"]) == 2
        assert "pass --backend" in capsys.readouterr().err
        assert main(["sagemaker", "deploy", printed["model_data"], "--role", role, "--instance-type", "ml.m5.xlarge",
                     "--backend", "tensorflow", "--endpoint-name", "tf"]) == 0
    container = captured["CreateModel"]["PrimaryContainer"]
    assert container["ModelDataUrl"] == printed["model_data"]
    assert container["Image"].endswith("tensorflow-inference:2.16-cpu")
    assert "SAGEMAKER_PROGRAM" not in container.get("Environment", {})  # TF Serving runs code/inference.py itself


def test_deploy_refuses_what_is_not_a_model(aws_deploy, tmp_path):
    from bertbridge.core.sagemaker.deploy import deploy

    session, role, _ = aws_deploy
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(bertbridge.BertbridgeError, match="not a model folder, a model.tar.gz or an s3:// URI"):
        deploy(tmp_path / "notes.txt", role=role, instance_type="ml.m5.xlarge", boto_session=session)
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(bertbridge.BertbridgeError, match="not a readable model.tar.gz"):
        deploy(bad, role=role, instance_type="ml.m5.xlarge", boto_session=session)


def _hostile_tarball(path: Path, member) -> Path:
    """A model.tar.gz with a good manifest plus one hostile member."""
    import io
    import tarfile

    manifest = json.dumps({"backend": "pytorch"}).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bertbridge.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = b"0", link: str = ""):
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == b"0" else 0
    return info


@pytest.mark.parametrize("member, message", [
    (_member("../evil.py"), r"member '\.\./evil\.py' has a path outside the archive"),
    (_member("/etc/cron.d/evil"), r"member '/etc/cron\.d/evil' has a path outside the archive"),
    (_member("code/x", b"2", "/etc/passwd"), r"member 'code/x' is a symbolic link to '/etc/passwd'"),
    (_member("code/x", b"2", "../../secrets"), r"is a symbolic link to '\.\./\.\./secrets'"),
    (_member("esc", b"2", "d/.."), r"member 'esc' is a symbolic link to 'd/\.\.' \(model archives hold plain files only\)"),
    (_member("x", b"1", "../outside"), r"member 'x' is a hard link to '\.\./outside'"),
    (_member("dev", b"3"), r"member 'dev' is a device or FIFO"),
])
def test_deploy_refuses_a_hostile_tarball_before_uploading_it(aws_deploy, tmp_path, member, message):
    from bertbridge.core.sagemaker.deploy import deploy

    session, role, captured = aws_deploy
    tarball = _hostile_tarball(tmp_path / "model.tar.gz", member)
    with pytest.raises(bertbridge.BertbridgeError, match=message):
        deploy(tarball, role=role, instance_type="ml.m5.xlarge", boto_session=session)
    assert captured == {}  # nothing was created, and nothing uploaded first:
    assert not session.client("s3").list_buckets()["Buckets"] or not any(
        session.client("s3").list_objects_v2(Bucket=b["Name"]).get("KeyCount", 0) for b in session.client("s3").list_buckets()["Buckets"])


def test_packing_refuses_a_symlink_out_of_the_model_folder(numpy_model_dir, tmp_path):
    from bertbridge.core.plugins.registry import backends
    from bertbridge.core.sagemaker.local import pack_model

    folder = _model_folder(numpy_model_dir, tmp_path / "model")
    (folder / "notes.txt").write_text("inside")
    (folder / "inside-link").symlink_to(folder / "notes.txt")  # a link within the folder is fine
    pack_model(backends().get("pytorch"), folder, tmp_path / "ok.tar.gz")
    secret = tmp_path / "secret.txt"
    secret.write_text("aws_secret_access_key=...")
    (folder / "leak").symlink_to(secret)
    with pytest.raises(bertbridge.BertbridgeError, match=rf"leak: a symbolic link to {secret}, outside the model folder"):
        pack_model(backends().get("pytorch"), folder, tmp_path / "model.tar.gz")
    (folder / "leak").unlink()
    (folder / "loop").symlink_to(folder / "loop")
    with pytest.raises(bertbridge.BertbridgeError, match=r"loop: a symbolic link that leads nowhere"):
        pack_model(backends().get("pytorch"), folder, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()


def test_mxnet_needs_an_image_and_debugger_config_is_sent(aws, tiny_model_dir, toy_data, tmp_path):
    """SageMaker's MXNet images are Python 3.8: refused with the fix; with --image the job carries a
    DebugHookConfig when the spec asks for the debugger, and the job writes its trial where that uploads from."""
    from bertbridge.core.sagemaker.launch import DEBUG_LOCAL_PATH, launch_training

    session, role, captured = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "out"), "debugger": {"attention": True}}))
    with pytest.raises(bertbridge.BertbridgeError, match=r"Python 3\.8.*docker/mxnet/Dockerfile.*--image"):
        launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="mxnet", boto_session=session)
    with pytest.raises(bertbridge.BertbridgeError, match="has no SageMaker Debugger capture"):
        launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="pytorch", boto_session=session)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bertbridge-mxnet:latest"
    job = launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="mxnet", image=image, boto_session=session)
    assert captured["AlgorithmSpecification"]["TrainingImage"] == image
    assert captured["DebugHookConfig"] == {"S3OutputPath": job.debug_output, "LocalPath": DEBUG_LOCAL_PATH}
    assert job.debug_output == f"{job.s3_prefix}/debug-output"
    bucket, _, prefix = job.s3_prefix[len("s3://"):].partition("/")
    uploaded = json.loads(session.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/spec/spec.json")["Body"].read())
    assert uploaded["debugger"]["attention"] is True and uploaded["debugger"]["out_dir"] == DEBUG_LOCAL_PATH

    # without the debugger the request has no DebugHookConfig
    captured.clear()
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(tiny_spec(tiny_model_dir, toy_data, tmp_path / "out")))
    launch_training(plain, role=role, instance_type="ml.m5.xlarge", backend="pytorch", boto_session=session)
    assert "DebugHookConfig" not in captured and "TensorBoardOutputConfig" not in captured


def test_tracking_tensorboard_sends_a_tensorboard_output_config(aws, tiny_model_dir, toy_data, tmp_path):
    from bertbridge.core.sagemaker.launch import TENSORBOARD_LOCAL_PATH, launch_training

    session, role, captured = aws
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(tiny_model_dir, toy_data, tmp_path / "out"), "tracking": {"tensorboard": "runs"}}))
    job = launch_training(spec, role=role, instance_type="ml.m5.xlarge", backend="pytorch", boto_session=session)
    assert captured["TensorBoardOutputConfig"] == {"S3OutputPath": f"{job.s3_prefix}/tensorboard", "LocalPath": TENSORBOARD_LOCAL_PATH}


def test_a_training_job_installs_what_its_reports_and_tracking_need(tmp_path):
    from bertbridge.core.plugins.registry import backends
    from bertbridge.core.sagemaker.launch import _source_dir

    _source_dir(tmp_path / "plain", backends().get("pytorch"), bertbridge.TaskSpec.from_dict({}))
    plain = (tmp_path / "plain" / "requirements.txt").read_text().split()
    assert "matplotlib>=3.7" in plain and not any(p.startswith(("tensorboardX", "mlflow")) for p in plain)
    spec = bertbridge.TaskSpec.from_dict({"tracking": {"tensorboard": "runs", "mlflow": True}})
    _source_dir(tmp_path / "tracked", backends().get("pytorch"), spec)
    assert {"tensorboardX>=2.6", "mlflow>=2.10"} <= set((tmp_path / "tracked" / "requirements.txt").read_text().split())
