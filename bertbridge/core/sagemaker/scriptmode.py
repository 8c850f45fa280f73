"""SageMaker script mode: run a training job from the container's environment.

One documented way in:

* the **spec** travels as the channel ``spec`` (one ``.yaml``/``.yml``/``.json`` file);
* **hyperparameters** are spec overrides with dotted keys (``training.epochs: 3``),
  plus ``backend``; keys starting with ``sagemaker_`` or ``_`` (set by the SDK, and by a
  tuning job: ``_tuning_objective_metric``) are ignored.
  They are read from ``/opt/ml/input/config/hyperparameters.json``, then ``SM_HPS``,
  then ``--key value`` arguments (later wins). Values may be plain strings (training
  toolkit / SDK v2) or JSON-encoded (SDK v3 ``ModelTrainer``); booleans are tolerant
  (``true``/``True``/``1``), lists are JSON;
* **data** comes from the channels ``train``, ``validation``, ``test`` (a channel with
  one file uses that file; one with ``.tfrecord`` shards is read as shards). In Pipe
  mode (``inputdataconfig.json``) a channel is read from its FIFO ``<channel>_0`` as
  TFRecords (the spec's labels must be listed: a pipe carries no schema file). A channel
  ``model`` holding a Hugging Face folder replaces ``model.name``. Other channels are ignored.

Out: the model folder in ``SM_MODEL_DIR``, metrics in ``SM_OUTPUT_DATA_DIR/metrics.json``,
checkpoints in ``/opt/ml/checkpoints`` (resumed from when present: managed spot
training), a debugger trial (``debugger.attention``) in ``/opt/ml/output/tensors`` (what
SageMaker's ``DebugHookConfig`` uploads to S3 while the job runs), TensorBoard event files
(``tracking.tensorboard``) in ``/opt/ml/output/tensorboard`` (what its ``TensorBoardOutputConfig``
uploads), and on error ``/opt/ml/output/failure`` (its first 1 KB is what
SageMaker shows) with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from bertbridge.core.errors import BertbridgeError, SpecError
from bertbridge.core.io.jsonfiles import read_json_object

DATA_CHANNELS = ("train", "validation", "test")
SPEC_CHANNEL = "spec"
MODEL_CHANNEL = "model"


@dataclass
class Environment:
    """What the container tells the job (SageMaker's ``SM_*`` variables and config files)."""

    model_dir: Path
    output_data_dir: Path
    output_dir: Path
    input_dir: Path
    checkpoint_dir: Path
    channels: dict[str, Path]
    input_modes: dict[str, str]
    hyperparameters: dict[str, Any]
    hosts: list[str] = field(default_factory=list)
    current_host: str = ""
    num_gpus: int = 0

    @classmethod
    def from_env(cls, argv: Sequence[str] = (), environ: Optional[dict] = None) -> "Environment":
        env = dict(os.environ if environ is None else environ)
        model_dir = Path(env.get("SM_MODEL_DIR", "/opt/ml/model"))
        base = model_dir.parent
        input_dir = Path(env.get("SM_INPUT_DIR", base / "input"))
        config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", input_dir / "config"))
        output_data_dir = Path(env.get("SM_OUTPUT_DATA_DIR", base / "output" / "data"))
        channels = {k[len("SM_CHANNEL_"):].lower(): Path(v) for k, v in env.items() if k.startswith("SM_CHANNEL_")}
        hps: dict[str, Any] = {}
        hps.update(_read_json(config_dir / "hyperparameters.json"))
        hps.update(_loads_dict(env.get("SM_HPS"), "SM_HPS"))
        hps.update(parse_argv(argv))
        modes = {name: str(cfg.get("TrainingInputMode", "File")) for name, cfg in _read_json(config_dir / "inputdataconfig.json").items() if isinstance(cfg, dict)}
        resource = _read_json(config_dir / "resourceconfig.json")
        hosts = _loads_list(env.get("SM_HOSTS")) or resource.get("hosts") or []
        return cls(
            model_dir=model_dir,
            output_data_dir=output_data_dir,
            output_dir=Path(env.get("SM_OUTPUT_DIR", output_data_dir.parent)),
            input_dir=input_dir,
            checkpoint_dir=Path(env.get("BERTBRIDGE_CHECKPOINT_DIR", base / "checkpoints")),
            channels=channels,
            input_modes=modes,
            hyperparameters={k: decode_value(v) for k, v in hps.items()},
            hosts=list(hosts),
            current_host=env.get("SM_CURRENT_HOST", resource.get("current_host", "")),
            num_gpus=int(env.get("SM_NUM_GPUS", "0") or 0),
        )


def _read_json(path: Path) -> dict:
    return read_json_object(path, SpecError, "fix or remove that SageMaker config file.")


def _loads_dict(text: Optional[str], name: str) -> dict:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{name} is not a JSON object ({exc}).") from None
    return data if isinstance(data, dict) else {}


def _loads_list(text: Optional[str]) -> list:
    try:
        data = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return data if isinstance(data, list) else []


def parse_argv(argv: Sequence[str]) -> dict[str, str]:
    """``--key value`` and ``--key=value`` pairs (a bare ``--flag`` means true)."""
    out: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--"):
            raise SpecError(f"unexpected argument {item!r}: hyperparameters are passed as --key value.")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if i + 1 < len(items) and not items[i + 1].startswith("--"):
                value = items[i + 1]
                i += 1
            else:
                value = "true"
        out[key] = value
        i += 1
    return out


def decode_value(value: Any) -> Any:
    """Tolerant decoding of a hyperparameter: JSON (v3 encodes every value), booleans, or the string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "yes"):
        return True
    if text.lower() in ("false", "no"):
        return False
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return value
    return decode_value(decoded) if isinstance(decoded, str) and decoded != value else decoded


def _channel_path(env: Environment, name: str) -> tuple[str, Optional[str]]:
    """(path, format) the spec reads a data channel from (a Pipe-mode FIFO reads as TFRecords)."""
    if env.input_modes.get(name, "File").lower() == "pipe":
        return str(env.input_dir / "data" / f"{name}_0"), None
    folder = env.channels[name]
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    if any(p.suffix in (".tfrecord", ".tfrecords") for p in files):
        return str(folder), None
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "nothing"
        raise SpecError(f"channel {name!r} ({folder}) must hold one data file or .tfrecord shards; it holds {found}.")
    return str(files[0]), None


def build_spec(env: Environment):
    """The task spec for this job: the spec channel, hyperparameter overrides, channel data."""
    from bertbridge.core.spec import TaskSpec

    if SPEC_CHANNEL not in env.channels:
        raise SpecError("no 'spec' channel: give the job a channel named 'spec' holding the task spec file (.yaml or .json).")
    spec_files = sorted(p for p in env.channels[SPEC_CHANNEL].iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json"))
    if len(spec_files) != 1:
        raise SpecError(f"the 'spec' channel ({env.channels[SPEC_CHANNEL]}) must hold exactly one .yaml/.yml/.json file; found {len(spec_files)}.")
    overrides = []
    for key, value in env.hyperparameters.items():
        if key.startswith(("sagemaker_", "_")) or key == "backend":  # SageMaker's own (_tuning_objective_metric)
            continue
        if "." not in key:
            raise SpecError(
                f"hyperparameter {key!r} is not a spec field: use dotted keys such as training.epochs, "
                "or 'backend'."
            )
        overrides.append(f"{key}={json.dumps(value)}")
    spec = TaskSpec.from_file(spec_files[0], overrides)
    data = {}
    for name in DATA_CHANNELS:
        if name in env.channels or env.input_modes.get(name, "").lower() == "pipe":
            path, fmt = _channel_path(env, name)
            data[name] = path
            if fmt:
                data["format"] = fmt
    if "train" not in data:
        raise SpecError("no 'train' channel: give the job a channel named 'train' with the training data.")
    training = {**spec.to_dict()["training"], "checkpoint_dir": str(env.checkpoint_dir)}
    model = spec.to_dict()["model"]
    if MODEL_CHANNEL in env.channels:  # the pretrained model folder, uploaded by bertbridge sagemaker train
        model["name"] = str(env.channels[MODEL_CHANNEL])
    debugger = spec.to_dict()["debugger"]
    if debugger["attention"] and not debugger["out_dir"]:  # where SageMaker's DebugHookConfig uploads from
        debugger["out_dir"] = str(env.output_dir / "tensors")
    tracking = spec.to_dict()["tracking"]
    if tracking["tensorboard"]:  # where SageMaker's TensorBoardOutputConfig uploads from
        tracking["tensorboard"] = str(env.output_dir / "tensorboard")
    # The job's instances are its hosts (what SageMaker started, whatever the spec said).
    distribution = {**spec.to_dict()["distribution"], "hosts": max(1, len(env.hosts))}
    return spec.replace(data={**spec.to_dict()["data"], **data}, model=model, training=training, debugger=debugger,
                        distribution=distribution, tracking=tracking, output_dir=str(env.model_dir))


def write_failure(env: Environment, exc: BaseException) -> None:
    """``/opt/ml/output/failure``: the reason first (SageMaker shows 1 KB), then the traceback."""
    if isinstance(exc, BertbridgeError):
        head = f"{type(exc).__name__}: {exc}"
    else:
        head = f"{type(exc).__name__}: {exc} (an internal error in bertbridge; the traceback follows)"
    env.output_dir.mkdir(parents=True, exist_ok=True)
    (env.output_dir / "failure").write_text(head + "\n\n" + "".join(traceback.format_exception(exc)), encoding="utf-8")


def main(backend: Optional[str] = None, argv: Optional[Sequence[str]] = None) -> int:
    """Train from the SageMaker environment; the entry points call this with their backend."""
    env = None
    try:
        env = Environment.from_env(sys.argv[1:] if argv is None else argv)
        from bertbridge.core.api import train

        spec = build_spec(env)
        chosen = env.hyperparameters.get("backend") or backend
        print(json.dumps({"event": "start", "backend": chosen, "hosts": env.hosts, "current_host": env.current_host,
                          "num_gpus": env.num_gpus, "checkpoint_dir": str(env.checkpoint_dir)}), flush=True)
        if _launched_workers(env, spec, chosen, sys.argv[1:] if argv is None else argv):
            return 0
        clf = train(spec, backend=chosen)
        if clf is not None:  # None: a data-parallel worker other than rank 0
            _write_metrics(env, clf.metrics)
        return 0
    except BaseException as exc:  # noqa: BLE001 - the job must always leave its reason behind
        write_failure(env or _fallback_env(), exc)
        print(f"bertbridge training failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        return 2 if isinstance(exc, BertbridgeError) else 1


def _write_metrics(env: Environment, metrics: dict) -> None:
    env.output_data_dir.mkdir(parents=True, exist_ok=True)
    (env.output_data_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def _launched_workers(env: Environment, spec, backend_name: Optional[str], argv: Sequence[str]) -> bool:
    """Run this instance's share of a data-parallel job if it must start its own workers (the
    spec asks for several processes, or the job has several instances, and the container did
    not start this process as an engine worker: SageMaker's torchrun driver does; for
    TensorFlow and MXNet this builds ``TF_CONFIG`` / ``DMLC_*`` from ``SM_HOSTS``). The workers
    rerun this entry point with the engine's environment; rank 0 (on the first host) writes the
    model, and that host writes ``metrics.json`` from it. False: train in this process."""
    from bertbridge.core.distributed import data_parallel
    from bertbridge.core.distributed.collective import sagemaker_cluster
    from bertbridge.core.io.artifacts import Manifest
    from bertbridge.core.plugins.registry import select_backend

    chosen = select_backend(backend_name, spec.backend, task=spec.task.type)
    if data_parallel.role(spec, chosen) != "launcher":
        return False
    dist = spec.distribution
    data_parallel.check(spec, chosen, "launcher")
    cluster = sagemaker_cluster(dist.processes_per_host, dist.timeout, dist.port)
    data_parallel.launch(chosen, cluster, [os.path.abspath(sys.argv[0]), *argv])
    if cluster.host_index == 0:
        _write_metrics(env, Manifest.read(env.model_dir).metrics)
    return True


def _fallback_env() -> Environment:
    base = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")).parent
    return Environment(base / "model", base / "output" / "data", Path(os.environ.get("SM_OUTPUT_DIR", base / "output")),
                       base / "input", base / "checkpoints", {}, {}, {})
