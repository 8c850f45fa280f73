"""The ``bertbridge`` command line.

::

    bertbridge train SPEC [--backend B] [--set training.epochs=3 ...] [--output-dir DIR]
    bertbridge tune SPEC [--backend B] [--set tuning.trials=4 ...] [--output-dir DIR]   # Optuna over tuning.parameters
    bertbridge evaluate MODEL DATA [--backend B] [--json]
    bertbridge predict MODEL (--text T [--text T ...] [--text-pair P ...] | --input FILE) [--output FILE]
    bertbridge run-local SPEC [--backend B] [--base-dir DIR] [--input-mode File|Pipe] [--python PY]
    bertbridge sagemaker train SPEC --role ARN --instance-type T [--spot] [--wait]
    bertbridge sagemaker tune SPEC --role ARN --instance-type T [--strategy Bayesian] [--wait]
    bertbridge sagemaker deploy MODEL --role ARN --instance-type T [--endpoint-name N]
    bertbridge serve MODEL|EXPORT [--host 127.0.0.1] [--port 8080] [--workers N]   # GET /ping, POST /invocations
    bertbridge export MODEL --format onnx|pt2|savedmodel|... --out DIR [--version 1]
    bertbridge export MODEL --format onnx --out DIR --optimize [--quantize int8 [--validate DATA] [--max-drop 1]]
    bertbridge export-tfrecord SPEC --out DIR [--split train] [--shards N] [--fixed-length]
    bertbridge attention MODEL (--text T [--text-pair P] | --question Q --context C) --out view.html [--png grid.png] [--backend B]
    bertbridge attention TRIAL --step N --out view.html [--png grid.png] [--example I]
    bertbridge explain MODEL (--text T [--text-pair P] | --question Q --context C) [--out explain.html] [--backend B]
    bertbridge backends [--json]
    bertbridge tasks [--json]                   # the registered tasks (task.type values)
    bertbridge spec SPEC [--set ...]            # print the resolved, validated spec

Problems with input (spec, data, model folder, backend) print one paragraph
and exit with status 2; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from bertbridge.core.distributed.collective import JOB_VARIABLE
from bertbridge.core.errors import BertbridgeError, DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertbridge",
        description="Fine-tune and serve BERT-family models on PyTorch, TensorFlow and MXNet from one spec.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="fine-tune a model from a spec file")
    p.add_argument("spec", help="task spec (.yaml, .yml or .json)")
    p.add_argument("--backend", help="framework backend (overrides the spec and $BERTBRIDGE_BACKEND)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set training.epochs=3 (repeatable)")
    p.add_argument("--output-dir", help="where to write the model folder (default: the spec's output_dir)")

    p = sub.add_parser("tune", help="search the spec's tuning.parameters (Optuna trials) and save the best model")
    p.add_argument("spec", help="task spec (.yaml, .yml or .json) with a tuning section")
    p.add_argument("--backend", help="framework backend of every trial (overrides the spec and $BERTBRIDGE_BACKEND)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set tuning.trials=4 (repeatable)")
    p.add_argument("--output-dir", help="where to save the best model folder (default: the spec's output_dir)")

    p = sub.add_parser("evaluate", help="metrics of a trained model on a labelled file")
    p.add_argument("model", help="model folder written by 'bertbridge train'")
    p.add_argument("data", help="labelled csv, tsv or jsonl file, read like the training data (QA: SQuAD JSON)")
    p.add_argument("--backend", help="backend to run the model on (default: the one that trained it)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of name=value lines")
    p.add_argument("--predictions-out", help="question answering: write the official {id: answer} predictions JSON here")

    p = sub.add_parser("predict", help="predict labels for texts")
    p.add_argument("model", help="model folder written by 'bertbridge train'")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="a text to classify (repeatable)")
    src.add_argument("--input", help="csv, tsv or jsonl file with the same text column(s) as the training data "
                                     "(QA: SQuAD JSON, or jsonl of {question, context})")
    src.add_argument("--question", action="append", help="question answering: a question (repeatable, one --context each)")
    p.add_argument("--text-pair", action="append", help="second text of a pair, one per --text")
    p.add_argument("--context", action="append", help="question answering: the context of each --question")
    p.add_argument("--output", help="write JSON lines here instead of standard output")
    p.add_argument("--resume", action="store_true",
                   help="with --input and --output: continue an --output left by a run that stopped, after the rows it "
                        "holds (a row cut short is dropped and predicted again)")
    p.add_argument("--backend", help="backend to run the model on (default: the one that trained it)")

    p = sub.add_parser("run-local", help="run a spec as a SageMaker script-mode job on this machine")
    p.add_argument("spec", help="task spec (.yaml, .yml or .json)")
    p.add_argument("--backend", help="framework backend (overrides the spec and $BERTBRIDGE_BACKEND)")
    p.add_argument("--base-dir", help="folder for the /opt/ml tree (default: a new temporary folder); reuse it to resume")
    p.add_argument("--python", help="Python interpreter to run the job with (e.g. another virtual environment)")
    p.add_argument("--input-mode", default="File", choices=["File", "Pipe"], help="how the train channel is delivered")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to the job as hyperparameters (spec overrides)")

    p = sub.add_parser("sagemaker", help="launch on Amazon SageMaker (SDK v3)")
    sm = p.add_subparsers(dest="sagemaker_command", required=True, metavar="SUBCOMMAND")
    t = sm.add_parser("train", help="run a spec as a SageMaker training job on the backend's framework image")
    t.add_argument("spec", help="task spec (.yaml, .yml or .json)")
    t.add_argument("--role", required=True, help="IAM role ARN the job runs as")
    t.add_argument("--instance-type", required=True, help="e.g. ml.g5.xlarge or ml.m5.xlarge")
    t.add_argument("--instance-count", type=int, default=None,
                   help="instances (hosts) for data-parallel training (default: the spec's distribution.hosts)")
    t.add_argument("--backend", help="framework backend (overrides the spec and $BERTBRIDGE_BACKEND)")
    t.add_argument("--bucket", help="S3 bucket for data, code and output (default: the SageMaker default bucket)")
    t.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    t.add_argument("--spot", action="store_true", help="managed spot training (checkpoints resume interrupted jobs)")
    t.add_argument("--max-run", type=int, default=24 * 3600, help="maximum training seconds")
    t.add_argument("--wait", action="store_true", help="wait for the job and stream its logs")
    t.add_argument("--image", help="training image URI (default: the backend's SageMaker framework image)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="spec overrides, passed to the job as hyperparameters")

    u = sm.add_parser("tune", help="run the spec's tuning section as a SageMaker hyperparameter tuning job")
    u.add_argument("spec", help="task spec (.yaml, .yml or .json) with a tuning section")
    u.add_argument("--role", required=True, help="IAM role ARN the training jobs run as")
    u.add_argument("--instance-type", required=True, help="e.g. ml.g5.xlarge or ml.m5.xlarge")
    u.add_argument("--instance-count", type=int, default=None, help="instances per training job (default: distribution.hosts)")
    u.add_argument("--backend", help="framework backend (overrides the spec and $BERTBRIDGE_BACKEND)")
    u.add_argument("--strategy", default="Bayesian", choices=["Bayesian", "Random", "Hyperband"], help="search strategy")
    u.add_argument("--job-name", help="tuning job name, at most 32 characters (default: bb-tune-<time>)")
    u.add_argument("--bucket", help="S3 bucket for data, code and output (default: the SageMaker default bucket)")
    u.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    u.add_argument("--max-run", type=int, default=24 * 3600, help="maximum seconds of each training job")
    u.add_argument("--wait", action="store_true", help="wait for the tuning job to finish")
    u.add_argument("--image", help="training image URI (default: the backend's SageMaker framework image)")
    u.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="spec overrides, passed to every training job as hyperparameters")

    d = sm.add_parser("deploy", help="serve a trained model on a SageMaker real-time endpoint")
    d.add_argument("model", help="model folder, model.tar.gz, or s3:// URI of a model.tar.gz (then give --backend)")
    d.add_argument("--role", required=True, help="IAM role ARN the endpoint runs as")
    d.add_argument("--instance-type", required=True, help="e.g. ml.m5.xlarge or ml.g5.xlarge")
    d.add_argument("--instance-count", type=int, default=1)
    d.add_argument("--endpoint-name", help="default: bertbridge-<backend>-<time>")
    d.add_argument("--backend", help="backend to serve with (default: the one that trained the model)")
    d.add_argument("--bucket", help="S3 bucket for the model.tar.gz (default: the SageMaker default bucket)")
    d.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    d.add_argument("--image", help="inference image URI (default: the backend's SageMaker framework image)")
    d.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")

    x = sm.add_parser("transform", help="predict jsonl files in S3 with a batch transform job (offline, any size)")
    x.add_argument("model", help="model folder, model.tar.gz, or s3:// URI of a model.tar.gz (then give --backend)")
    x.add_argument("--input", required=True, dest="input_uri", help="s3:// prefix (or file) of jsonl inputs, one per line")
    x.add_argument("--output", required=True, dest="output_uri", help="s3:// prefix for the outputs (one file per input file)")
    x.add_argument("--role", required=True, help="IAM role ARN the job runs as")
    x.add_argument("--instance-type", required=True, help="e.g. ml.m5.xlarge or ml.g5.xlarge")
    x.add_argument("--instance-count", type=int, default=1)
    x.add_argument("--job-name", help="default: bertbridge-<backend>-<time> (also the model's name)")
    x.add_argument("--max-payload-mb", type=int, default=None,
                   help="largest request, in MB (default: the serving limit, 5)")
    x.add_argument("--backend", help="backend to serve with (default: the one that trained the model)")
    x.add_argument("--bucket", help="S3 bucket for the model.tar.gz (default: the SageMaker default bucket)")
    x.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    x.add_argument("--image", help="inference image URI (default: the backend's SageMaker framework image)")
    x.add_argument("--wait", action="store_true", help="wait until the job ends")

    p = sub.add_parser("serve", help="serve a model over HTTP: GET /ping, POST /invocations")
    p.add_argument("model", help="model folder written by 'bertbridge train'")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 inside a container)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--backend", help="backend to run the model on (default: the one that trained it)")
    p.add_argument("--max-batch", type=int, default=32, help="inputs predicted together at most (micro-batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with")
    p.add_argument("--max-body-mb", type=float, default=5.0, help="request size limit (413 above it)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a request's line and headers may take to arrive before the connection is closed")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a request body may take to arrive after its headers (408 after that)")
    p.add_argument("--workers", type=int, default=1, help="processes serving the port, each with its own model (default 1)")
    p.add_argument("--threads", type=int, help="intra-op threads per process (default: every core, divided among --workers)")
    p.add_argument("--max-inputs", type=int, help="inputs one request may hold (default 1024; 0: as many as fit "
                                                   "--max-body-mb, as a batch transform sends them)")

    p = sub.add_parser("export", help="export a trained model for serving (ONNX, torch.export, a TF Serving SavedModel, ...)")
    p.add_argument("model", help="model folder written by 'bertbridge train'")
    p.add_argument("--format", required=True, dest="fmt", help="export format: onnx, pt2, savedmodel, mxnet-symbol, torchscript (deprecated)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--version", type=int, default=1, help="model version sub-folder (savedmodel; default 1)")
    p.add_argument("--backend", help="backend that writes the export (default: one that supports the format)")
    p.add_argument("--optimize", action="store_true", help="apply the format's graph fusions (onnx: ONNX Runtime's transformer optimizer)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (weights int8, activations at run time); "
                   "the export is scored against the model and refused over --max-drop")
    p.add_argument("--validate", metavar="DATA", help="labelled file a quantized export is scored on (default: the training run's validation file)")
    p.add_argument("--max-drop", type=float, default=1.0, help="largest metric drop, in points, a quantized export may have (default 1)")

    p = sub.add_parser("export-tfrecord", help="tokenize a split of a spec into TFRecord shards")
    p.add_argument("spec", help="task spec (.yaml, .yml or .json)")
    p.add_argument("--split", default="train", choices=["train", "validation", "test"])
    p.add_argument("--out", required=True, help="folder for the shards (one folder per split)")
    p.add_argument("--shards", type=int, default=1, help="number of files (default 1)")
    p.add_argument("--fixed-length", action="store_true", help="pad every example to training.max_seq_length")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("attention", help="render attention (HTML head view, PNG grid) of a model on one input, "
                                         "or recorded by a debugger run")
    p.add_argument("model", metavar="MODEL_OR_TRIAL",
                   help="a model folder (with --text, or --question/--context), or a debugger trial folder (with --step)")
    p.add_argument("--step", type=int, help="a trial's optimizer step to show (see bertbridge-debug.json)")
    p.add_argument("--text", action="append", help="a model folder: the text to run")
    p.add_argument("--text-pair", action="append", help="a model folder: the second text of a pair")
    p.add_argument("--question", action="append", help="a question-answering model: the question")
    p.add_argument("--context", action="append", help="a question-answering model: the context")
    p.add_argument("--backend", help="a model folder: the backend that runs it (default: the one that trained it)")
    p.add_argument("--out", required=True, help="the HTML file to write (self-contained, works offline)")
    p.add_argument("--example", type=int, default=0, help="a trial: which recorded example (default 0)")
    p.add_argument("--png", help="also write a per-layer heatmap grid to this PNG file")

    p = sub.add_parser("explain", help="token attributions (integrated gradients) for a model's prediction on one input")
    p.add_argument("model", metavar="MODEL", help="a model folder")
    p.add_argument("--text", action="append", help="the text to explain")
    p.add_argument("--text-pair", action="append", help="the second text of a pair")
    p.add_argument("--question", action="append", help="a question-answering model: the question")
    p.add_argument("--context", action="append", help="a question-answering model: the context")
    p.add_argument("--backend", help="the backend that runs it (default: the one that trained it)")
    p.add_argument("--out", help="also write the tokens shaded by attribution to this HTML file")
    p.add_argument("--steps", type=int, default=32, help="integration steps to start from (doubled until complete; default 32)")

    p = sub.add_parser("tasks", help="list the registered tasks (task.type values) and their plugins")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("backends", help="list backends, their framework versions and availability")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("spec", help="validate a spec and print it fully resolved")
    p.add_argument("spec")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        from bertbridge.core.forwarding import maybe_forward

        forwarded = maybe_forward(args, argv)
        if forwarded is not None:
            return forwarded
        return _COMMANDS[args.command](args)
    except BertbridgeError as exc:
        if args.debug:
            raise
        print(f"bertbridge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bertbridge: interrupted", file=sys.stderr)
        return 130


def _train(args) -> int:
    from bertbridge.core.api import train

    clf = train(args.spec, backend=args.backend, overrides=args.overrides, output_dir=args.output_dir)
    if clf is None or os.environ.get(JOB_VARIABLE):  # a data-parallel worker: rank 0, or bertbridge's launcher, reports
        return 0
    report = getattr(clf, "debug_report", None)
    if report is not None:
        from bertbridge.core.debugger.capture import format_verdicts

        print(f"debugger_trial={report.trial}")
        for line in format_verdicts(report.rules):
            print(line)
    print(f"model_dir={clf.path}")
    return 0


def _tune(args) -> int:
    from bertbridge.core.plugins.builtin import format_metric
    from bertbridge.core.tuning.report import PLOT_NAME, TABLE_NAME
    from bertbridge.core.tuning.search import tune

    result = tune(args.spec, backend=args.backend, overrides=args.overrides, output_dir=args.output_dir)
    print(f"best_trial={result.best_trial}")
    print(format_metric(f"best_{result.metric}", result.best_value))
    for name, value in result.best_params.items():
        print(f"{name}={value}")
    print(f"trials_table={result.out_dir / TABLE_NAME}")
    print(f"trials_plot={result.out_dir / PLOT_NAME}")
    print(f"model_dir={result.model_dir}")
    return 0


def _evaluate(args) -> int:
    from bertbridge.core.api import load
    from bertbridge.core.plugins.builtin import format_metric
    from bertbridge.core.plugins.registry import tasks

    model = load(args.model, backend=args.backend)
    metrics = tasks().get(model.manifest.task).cli_evaluate(model, args.data, args.predictions_out)
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        for name, value in metrics.items():
            print(format_metric(name, value))
    return 0


def _predict(args) -> int:
    from bertbridge.core.api import load
    from bertbridge.core.data.streaming import drop_cut_line, rows_done
    from bertbridge.core.plugins.registry import tasks

    if args.input and args.text_pair:  # checked before --output is opened (and truncated)
        raise DataError("--text-pair goes with --text; with --input, pairs come from the file's text_pair column.")
    if args.resume and not (args.input and args.output):
        raise DataError("--resume continues the --output file of a run over an --input file: give both.")
    if args.output:  # checked before the model loads (the file itself is opened at the first row)
        folder = Path(args.output).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            reason = "no such folder" if not folder.is_dir() else "the folder is not writable"
            raise DataError(f"{args.output}: cannot write predictions there ({reason}). Check that the folder exists.")
    model = load(args.model, backend=args.backend)
    task = tasks().get(model.manifest.task)
    if args.resume and not task.resumable_predict:
        raise DataError(f"{task.name} models cannot resume a prediction run (the task does not support it); run it again without --resume.")
    written = rows_done(Path(args.output)) if args.resume else None
    args.skip, args.last_row = (written.rows, written.last) if written else (0, None)

    def open_output():  # at the first row: a refused --resume leaves the file as it was
        if written:
            drop_cut_line(Path(args.output), written)
        try:
            return open(args.output, "a" if args.resume else "w", encoding="utf-8") if args.output else sys.stdout
        except OSError as exc:
            raise DataError(f"{args.output}: cannot write predictions there ({exc.strerror}). Check that the folder exists.") from None

    out = None
    try:
        for row in task.cli_predict(model, args):
            out = out or open_output()
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out = out or open_output()
    finally:
        if args.output and out is not None:
            out.close()
    return 0


def _run_local(args) -> int:
    from bertbridge.core.sagemaker.local import run_local

    python = args.python
    if python is None:
        from bertbridge.core.forwarding import installed_here, interpreter_for, target_backend
        from bertbridge.core.plugins.registry import backends

        name = target_backend(args)
        if name and not installed_here(backends().get(name).requires):
            python = interpreter_for(name)
    run = run_local(args.spec, backend=args.backend, base_dir=args.base_dir, python=python,
                    input_mode=args.input_mode, overrides=args.overrides)
    print(json.dumps({"base_dir": str(run.base), "returncode": run.returncode,
                      "model_tar": str(run.model_tar) if run.model_tar else None}))
    if run.returncode != 0:
        print(f"bertbridge run-local: the job failed: {run.failure or 'see its output above'}", file=sys.stderr)
    return 0 if run.returncode == 0 else 1


def _sagemaker(args) -> int:
    from bertbridge.core.sagemaker.aws import aws_errors

    with aws_errors():
        return _sagemaker_command(args)


def _sagemaker_command(args) -> int:
    if args.sagemaker_command == "deploy":
        from bertbridge.core.sagemaker.deploy import deploy

        done = deploy(args.model, role=args.role, instance_type=args.instance_type, instance_count=args.instance_count,
                      endpoint_name=args.endpoint_name, backend=args.backend, bucket=args.bucket, region=args.region,
                      image=args.image, wait=args.wait)
        print(json.dumps({"endpoint": done.endpoint_name, "image": done.image, "model_data": done.model_data,
                          "backend": done.backend}))
        return 0
    if args.sagemaker_command == "transform":
        from bertbridge.core.sagemaker.transform import MAX_PAYLOAD_MB, transform

        job = transform(args.model, input_uri=args.input_uri, output_uri=args.output_uri, role=args.role,
                        instance_type=args.instance_type, instance_count=args.instance_count, job_name=args.job_name,
                        backend=args.backend, bucket=args.bucket, region=args.region, image=args.image,
                        max_payload_mb=MAX_PAYLOAD_MB if args.max_payload_mb is None else args.max_payload_mb, wait=args.wait)
        print(json.dumps({"transform_job": job.job_name, "model": job.model_name, "image": job.image,
                          "model_data": job.model_data, "output": job.output, "backend": job.backend}))
        return 0
    if args.sagemaker_command == "tune":
        from bertbridge.core.sagemaker.tune import launch_tuning

        tuning = launch_tuning(args.spec, role=args.role, instance_type=args.instance_type, instance_count=args.instance_count,
                               backend=args.backend, overrides=args.overrides, strategy=args.strategy, bucket=args.bucket,
                               region=args.region, max_run_seconds=args.max_run, image=args.image, job_name=args.job_name,
                               wait=args.wait)
        print(json.dumps({"tuning_job": tuning.tuning_job, "objective": tuning.objective, "image": tuning.image,
                          "s3_prefix": tuning.s3_prefix}))
        return 0
    from bertbridge.core.sagemaker.launch import launch_training

    job = launch_training(args.spec, role=args.role, instance_type=args.instance_type, instance_count=args.instance_count,
                          backend=args.backend, overrides=args.overrides, bucket=args.bucket, region=args.region,
                          spot=args.spot, max_run_seconds=args.max_run, wait=args.wait, image=args.image)
    print(json.dumps({"job": job.job_name, "image": job.image, "s3_prefix": job.s3_prefix,
                      **({"debug_output": job.debug_output} if job.debug_output else {})}))
    return 0


def _serve(args) -> int:
    from bertbridge.core.serving.handlers import check_max_inputs
    from bertbridge.core.serving.protocol import MAX_INPUTS_ENV
    from bertbridge.core.serving.server import ServerConfig, serve

    if args.max_inputs is not None:
        if args.max_inputs < 0:
            raise DataError(f"--max-inputs must be 0 (no count limit) or more, got {args.max_inputs}.")
        os.environ[MAX_INPUTS_ENV] = str(args.max_inputs)  # read per request, here and in --workers processes
    check_max_inputs()

    config = ServerConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                          header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout)
    serve(args.model, host=args.host, port=args.port, backend=args.backend, config=config, workers=args.workers,
          threads=args.threads)
    return 0


def _export(args) -> int:
    from bertbridge.core.api import export

    if (args.validate is not None or args.max_drop != 1.0) and not args.quantize:
        raise DataError("--validate and --max-drop judge a quantized export: add --quantize int8, or leave them out.")
    written = export(args.model, args.fmt, args.out, backend=args.backend, version=args.version, optimize=args.optimize,
                     quantize=args.quantize, validate=args.validate, max_drop=args.max_drop)
    check = _export_validation(written)
    if check:
        print(f"{check['metric']}: model {check['model']:.4f}, export {check['export']:.4f}, drop {check['drop']:.2f} points "
              f"(budget {check['max_drop']:g}) on {check['data']}", file=sys.stderr)
    print(written)
    return 0


def _export_validation(written: Path) -> dict:
    """The accuracy check recorded in an export folder's manifest (empty when there was none)."""
    from bertbridge.core.io.artifacts import Manifest

    folder = written.parent
    try:
        return dict(Manifest.read(folder).export.get("validation", {}))
    except BertbridgeError:  # formats whose file is not beside the manifest (savedmodel: DIR/1/)
        return {}


def _export_tfrecord(args) -> int:
    from bertbridge.core.api import export_tfrecord

    paths = export_tfrecord(args.spec, args.out, split=args.split, shards=args.shards,
                            fixed_length=args.fixed_length, overrides=args.overrides)
    for path in paths:
        print(path)
    return 0


def _attention(args) -> int:
    from bertbridge.core.api import load
    from bertbridge.core.debugger import attention_view
    from bertbridge.core.io.artifacts import MANIFEST_NAME
    from bertbridge.core.plugins.registry import tasks

    png = Path(args.png) if args.png else None
    if (Path(args.model) / MANIFEST_NAME).is_file():
        if args.step is not None:
            raise DataError(f"{args.model} is a model folder: --step is for debugger trials. Give --text (or --question/--context).")
        model = load(args.model, backend=args.backend, batch_size=1)
        text, pair = tasks().get(model.manifest.task).cli_single_input(args)
        data = attention_view.write_data(attention_view.from_model(model, text, pair), Path(args.out), png=png)
    else:
        if args.step is None:
            raise DataError(f"{args.model} is not a model folder (no {MANIFEST_NAME}), so it is read as a debugger trial: "
                            "give --step N (a step listed in its bertbridge-debug.json), or pass a model folder.")
        data = attention_view.write(args.model, args.step, Path(args.out), example=args.example, png=png)
    print(json.dumps({"html": str(Path(args.out).resolve()), "png": str(Path(args.png).resolve()) if args.png else None,
                      "tokens": len(data.tokens), "layers": int(data.attention.shape[0]), "heads": int(data.attention.shape[1])}))
    return 0


def _explain(args) -> int:
    from bertbridge.core.api import load
    from bertbridge.core.debugger import explain
    from bertbridge.core.io.artifacts import write_text_atomic
    from bertbridge.core.plugins.registry import tasks

    if not 1 <= args.steps <= explain.MAX_STEPS:
        raise DataError(f"--steps must be between 1 and {explain.MAX_STEPS}, got {args.steps}.")
    model = load(args.model, backend=args.backend, batch_size=1)
    text, pair = tasks().get(model.manifest.task).cli_single_input(args)
    result = explain.explain(model, text, pair, steps=args.steps)
    if args.out:
        write_text_atomic(Path(args.out), explain.render_html(result))
        result["html"] = str(Path(args.out).resolve())
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _backends(args) -> int:
    from bertbridge.core.forwarding import reachable_status
    from bertbridge.core.plugins.registry import backends

    statuses = [reachable_status(b) for b in backends()]
    broken = backends().broken
    if args.json:
        print(json.dumps(
            [{"name": s.name, "available": s.available, "version": s.version, "detail": s.detail, "tasks": list(s.tasks),
              "architectures": list(s.architectures), "python": s.python} for s in statuses]
            + [{"name": b.name, "available": False, "version": None, "detail": f"plugin failed to load: {b.error}", "tasks": [],
                "architectures": []} for b in broken],
            indent=2,
        ))
        return 0
    print(f"{'backend':<12} {'available':<10} {'version':<12} {'architectures':<40} detail")
    for s in statuses:
        print(f"{s.name:<12} {'yes' if s.available else 'no':<10} {s.version or '-':<12} {', '.join(s.architectures) or '-':<40} {s.detail}")
    for b in broken:
        print(f"{b.name:<12} {'no':<10} {'-':<12} {'-':<40} plugin {b.value} failed to load: {b.error}")
    return 0


def _tasks(args) -> int:
    from bertbridge.core.api import list_tasks
    from bertbridge.core.plugins.registry import tasks

    listed, broken = list_tasks(), tasks().broken
    if args.json:
        print(json.dumps(listed + [{"name": b.name, "summary": f"plugin failed to load: {b.error}", "module": b.value}
                                   for b in broken], indent=2))
        return 0
    print(f"{'task':<22} summary")
    for t in listed:
        print(f"{t['name']:<22} {t['summary']}")
    for b in broken:
        print(f"{b.name:<22} plugin {b.value} failed to load: {b.error}")
    return 0


def _spec(args) -> int:
    import yaml

    from bertbridge.core.api import load_spec

    print(yaml.safe_dump(load_spec(Path(args.spec), args.overrides).to_dict(), sort_keys=False), end="")
    return 0


_COMMANDS = {
    "train": _train, "tune": _tune, "evaluate": _evaluate, "predict": _predict, "run-local": _run_local, "sagemaker": _sagemaker, "serve": _serve, "export": _export, "export-tfrecord": _export_tfrecord,
    "backends": _backends, "tasks": _tasks, "spec": _spec, "attention": _attention, "explain": _explain,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
