"""SageMaker batch transform: the exact CreateTransformJob request (moto), and the serving functions and
``bertbridge serve`` driven as the transform agent drives a container: the input split on lines, as many
records per request as fit the payload limit, one output line per record, joined to its input."""

import json
import urllib.request

import pytest

from bertbridge.testing import tiny

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    return tiny_classifier


def transform_agent(invoke, records: bytes, max_payload_bytes: int) -> tuple[bytes, list[int]]:
    """What SageMaker's transform agent does with one input file for SplitType=Line,
    BatchStrategy=MultiRecord, AssembleWith=Line and JoinSource=Input: split on lines, post as many
    whole lines per request as fit ``max_payload_bytes``, split each response on lines (one per record),
    and join each record's input object with its output under ``SageMakerOutput``. Returns the
    assembled output and the number of records in each request."""
    lines = [line for line in records.split(b"\n") if line.strip()]
    payloads, current = [], []
    for line in lines:
        if current and sum(len(x) + 1 for x in current) + len(line) + 1 > max_payload_bytes:
            payloads.append(current)
            current = []
        current.append(line)
    payloads.append(current)
    joined = []
    for payload in payloads:
        body = invoke(b"".join(x + b"\n" for x in payload))
        outputs = [o for o in body.split(b"\n") if o.strip()]
        assert len(outputs) == len(payload), f"{len(payload)} records in, {len(outputs)} lines out"
        for record, output in zip(payload, outputs):
            joined.append(json.dumps({**json.loads(record), "SageMakerOutput": json.loads(output)}).encode())
    return b"\n".join(joined) + b"\n", [len(p) for p in payloads]


def _records(n: int) -> bytes:
    texts = [t for t, _ in tiny.toy_sentences(n, seed=5)]
    return b"".join(json.dumps({"id": f"r{i}", "text": t}).encode() + b"\n" for i, t in enumerate(texts))


def _check_joined(out: bytes, records: bytes, model) -> None:
    rows = [json.loads(line) for line in out.splitlines()]
    inputs = [json.loads(line) for line in records.splitlines()]
    assert [r["id"] for r in rows] == [i["id"] for i in inputs]
    want = model.predict([i["text"] for i in inputs])
    assert [r["SageMakerOutput"]["label"] for r in rows] == [w["label"] for w in want]
    assert all(abs(r["SageMakerOutput"]["score"] - w["score"]) < 1e-5 for r, w in zip(rows, want))


def test_serving_functions_answer_multi_record_jsonlines(classifier, monkeypatch):
    """The inference toolkit's path (model_fn/input_fn/predict_fn/output_fn), with the transform job's
    container variable: 3,000 records in requests of up to 64 KB, more than 1,024 inputs per request."""
    from bertbridge.core.serving import handlers
    from bertbridge.core.serving.protocol import MAX_INPUTS_ENV

    model = handlers.model_fn(str(classifier.path))
    records = _records(3000)

    def invoke(body: bytes) -> bytes:
        text, content_type = handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, "application/jsonlines"), model),
                                                "application/jsonlines")
        assert content_type == "application/jsonlines"
        return text.encode()

    with pytest.raises(Exception, match="inputs in one request; send at most 1024"):
        transform_agent(invoke, records, 64 * 1024)  # a real-time endpoint's count limit
    monkeypatch.setenv(MAX_INPUTS_ENV, "0")
    out, sizes = transform_agent(invoke, records, 64 * 1024)
    assert len(sizes) > 1 and max(sizes) > 1024  # several requests, over a real-time endpoint's count limit
    _check_joined(out, records, model)


def test_bertbridge_serve_answers_the_transform_agent(classifier):
    from test_server import _start_server

    proc, port = _start_server(classifier.path, "--max-inputs", "0", "--max-body-mb", "0.1")
    try:

        def invoke(body: bytes) -> bytes:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST", headers={
                "Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.headers["Content-Type"].startswith("application/jsonlines")
                return response.read()

        records = _records(2500)
        out, sizes = transform_agent(invoke, records, 100 * 1024)
        assert len(sizes) > 1 and max(sizes) > 1024
        _check_joined(out, records, classifier)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_refuses_a_negative_max_inputs(classifier, capsys):
    from bertbridge.core.cli import main

    assert main(["serve", str(classifier.path), "--max-inputs", "-1"]) == 2
    assert "--max-inputs must be 0 (no count limit) or more" in capsys.readouterr().err


# -- the job request -----------------------------------------------------------------------------
moto = pytest.importorskip("moto")


@pytest.fixture()
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        import boto3

        session = boto3.Session(region_name="us-east-1")
        role = session.client("iam").create_role(RoleName="SageMakerRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        session.client("s3").create_bucket(Bucket="data")
        captured = {}
        for op in ("CreateModel", "CreateTransformJob"):
            session.events.register(f"provide-client-params.sagemaker.{op}",
                                    lambda params, op=op, **kw: captured.__setitem__(op, dict(params)))
        yield session, role, captured


def test_create_transform_job_request(aws, classifier):
    from bertbridge.core.sagemaker.transform import transform

    session, role, captured = aws
    job = transform(classifier.path, input_uri="s3://data/in/", output_uri="s3://data/out/", role=role,
                    instance_type="ml.m5.xlarge", instance_count=2, job_name="sst2-offline", boto_session=session)
    container = captured["CreateModel"]["PrimaryContainer"]
    assert captured["CreateModel"]["ModelName"] == "sst2-offline" == job.model_name
    assert "BERTBRIDGE_MAX_INPUTS" not in container["Environment"]  # an endpoint of this model keeps the real-time limit
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "/bertbridge/transforms/sst2-offline/" in job.model_data
    environment = captured["CreateTransformJob"].pop("Environment")
    assert environment["BERTBRIDGE_MAX_INPUTS"] == "0"  # requests hold as many records as fit the payload
    for name in ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGEMAKER_GUNICORN_TIMEOUT_SECONDS", "SAGEMAKER_NGINX_PROXY_READ_TIMEOUT_SECONDS"):
        assert environment[name] == "3600"  # the model servers wait as long as the invocation may take
    for name in ("TS_MAX_REQUEST_SIZE", "MMS_MAX_REQUEST_SIZE"):
        assert int(environment[name]) > 5 * 1024 * 1024  # a full payload is accepted
    for name in ("TS_MAX_RESPONSE_SIZE", "MMS_MAX_RESPONSE_SIZE"):
        assert int(environment[name]) >= 3 * 5 * 1024 * 1024  # answers are longer than short input lines
    assert container["ModelDataUrl"] == job.model_data and container["Image"].endswith("pytorch-inference:2.3-cpu-py311")
    assert captured["CreateTransformJob"] == {
        "TransformJobName": "sst2-offline",
        "ModelName": "sst2-offline",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 5,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1},
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/in/"}},
                           "ContentType": "application/jsonlines", "SplitType": "Line", "CompressionType": "None"},
        "TransformOutput": {"S3OutputPath": "s3://data/out/", "Accept": "application/jsonlines", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2},
        "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"},
    }
    described = session.client("sagemaker").describe_transform_job(TransformJobName="sst2-offline")
    assert described["ModelName"] == "sst2-offline"


def test_transform_cli_and_its_refusals(aws, classifier, capsys, monkeypatch):
    import boto3

    from bertbridge.core.cli import main

    session, role, captured = aws
    monkeypatch.setattr(boto3, "Session", lambda region_name=None: session)
    base = ["sagemaker", "transform", str(classifier.path), "--role", role, "--instance-type", "ml.m5.xlarge"]
    assert main(base + ["--input", "s3://data/in/", "--output", "s3://data/out/", "--max-payload-mb", "2"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["transform_job"] == captured["CreateTransformJob"]["TransformJobName"] and printed["backend"] == "pytorch"
    assert captured["CreateTransformJob"]["MaxPayloadInMB"] == 2
    assert main(base + ["--input", "data/in.jsonl", "--output", "s3://data/out/"]) == 2
    assert "--input 'data/in.jsonl': a transform job reads and writes S3" in capsys.readouterr().err
    assert main(base + ["--input", "s3://data/in/", "--output", "s3://data/out/", "--max-payload-mb", "101"]) == 2
    assert "--max-payload-mb must be between 1 and 100" in capsys.readouterr().err
