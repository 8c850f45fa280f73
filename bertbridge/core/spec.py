"""The framework-neutral task spec: what to train, on which data, from which model, how.

A spec is a tree of frozen dataclasses. Build one from a YAML or JSON file
(:meth:`TaskSpec.from_file`), a plain dict (:meth:`TaskSpec.from_dict`) or in
code; :meth:`TaskSpec.to_dict` gives back a dict that ``from_dict`` turns into
an equal spec. Every field is checked when the spec is built, and a bad field
raises :class:`~bertbridge.core.errors.SpecError` naming its dotted path.

Example::

    >>> from bertbridge.core.spec import TaskSpec
    >>> spec = TaskSpec.from_dict({"data": {"train": "train.tsv"}, "training": {"epochs": 2}})
    >>> spec.training.epochs, spec.model.name, spec.task.type
    (2, 'minilm', 'text_classification')
    >>> spec.with_overrides(["training.batch_size=8"]).training.batch_size
    8
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from bertbridge.core.errors import SpecError

DATA_FORMATS = ("csv", "tsv", "jsonl", "tfrecord")
Column = Union[str, int]


def _choices(*values: str) -> dict:
    return {"choices": values}


LONG_TEXT_AGGREGATES = ("mean", "max", "first")


@dataclass(frozen=True)
class LongTextConfig:
    """Text classification of texts longer than ``training.max_seq_length`` tokens.

    Each text is cut into windows of ``max_seq_length`` tokens; consecutive windows share
    ``stride`` tokens (the overlap, as ``doc_stride`` in question answering), and a text
    gets at most ``max_windows`` windows (the rest of it is not read). Training sees every
    window with its text's label(s); evaluation and prediction combine a text's window
    logits by ``aggregate``: ``mean`` (the average), ``max`` (each label's largest) or
    ``first`` (the first window's, which is what truncation sees), so metrics are per text.
    """

    stride: int = 32
    max_windows: int = 16
    aggregate: str = field(default="mean", metadata=_choices(*LONG_TEXT_AGGREGATES))

    def _validate(self, path: str) -> None:
        if self.stride < 0:
            raise SpecError(f"{path}.stride must be >= 0 (tokens two windows share), got {self.stride}.")
        if self.max_windows < 1:
            raise SpecError(f"{path}.max_windows must be >= 1, got {self.max_windows}.")


@dataclass(frozen=True)
class TaskConfig:
    """What is predicted.

    ``type``: a registered task (``bertbridge tasks`` lists them): the built-in
    ``text_classification`` (single sentence or sentence pair) or ``question_answering``
    (extractive, SQuAD v1.1/v2.0 JSON data files). The task checks its own fields.
    ``multi_label``: each example may carry several labels (sigmoid outputs).
    ``threshold``: multi-label decision threshold on each label's probability.

    Question answering only: a context longer than ``training.max_seq_length`` is cut
    into windows; ``doc_stride`` is the number of context tokens consecutive windows
    **share** (the overlap, as in Hugging Face ``run_qa.py``; not Google BERT's step).
    Questions are cut to ``max_question_length`` tokens. Answers are at most
    ``max_answer_length`` tokens, chosen from the ``n_best`` start and end candidates;
    for SQuAD v2 data the answer is empty ("no answer") when the null score beats the
    best span by more than ``null_threshold``.

    Text classification only: ``long_text`` (see :class:`LongTextConfig`; ``long_text: {}``
    takes its defaults) classifies texts longer than ``training.max_seq_length`` in
    windows instead of cutting them.
    """

    type: str = "text_classification"
    multi_label: bool = False
    threshold: float = 0.5
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_length: int = 30
    n_best: int = 20
    null_threshold: float = 0.0
    long_text: Optional[LongTextConfig] = None

    def _validate(self, path: str) -> None:
        for name in ("doc_stride", "max_question_length", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                raise SpecError(f"{path}.{name} must be >= 1, got {getattr(self, name)}.")
        if not 0.0 < self.threshold < 1.0:
            raise SpecError(f"{path}.threshold must be between 0 and 1 (exclusive), got {self.threshold}.")
        if not self.type.strip():
            raise SpecError(f"{path}.type must name a task, e.g. text_classification.")


@dataclass(frozen=True)
class DataConfig:
    """Where the examples are and how to read them.

    Paths are relative to the spec file's folder. A file is read by its extension
    (``.csv``, ``.tsv``, ``.jsonl``, ``.tfrecord``) and a folder as ``.tfrecord``
    shards; ``format`` applies to paths without a known extension (``.txt`` files,
    Pipe-mode FIFOs: ``format: tfrecord``). Columns are
    header names, or 0-based indices when ``header`` is false. Labels come
    from ``labels`` (list), else ``labels_file`` (one per line), else the
    sorted distinct labels of the training file. In csv/tsv, multi-label
    cells are joined by ``label_separator``; in jsonl they are lists.
    """

    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    format: Optional[str] = field(default=None, metadata=_choices(*DATA_FORMATS))
    header: bool = True
    text_column: Column = "text"
    text_pair_column: Optional[Column] = None
    label_column: Column = "label"
    labels: Optional[tuple[str, ...]] = None
    labels_file: Optional[str] = None
    label_separator: str = ","
    encoding: str = "utf-8"

    def _validate(self, path: str) -> None:
        if self.labels is not None and self.labels_file is not None:
            raise SpecError(f"{path}: give either 'labels' or 'labels_file', not both.")
        if self.labels is not None:
            if len(self.labels) < 2 and self.labels:
                raise SpecError(f"{path}.labels needs at least two labels, got {list(self.labels)}.")
            dupes = sorted({x for x in self.labels if self.labels.count(x) > 1})
            if dupes:
                raise SpecError(f"{path}.labels lists {dupes} more than once; each label must appear once.")
        if not self.header:
            for name in ("text_column", "text_pair_column", "label_column"):
                value = getattr(self, name)
                if value is not None and not isinstance(value, int):
                    raise SpecError(
                        f"{path}.{name} is {_show(value)}, but {path}.header is false, so columns are "
                        f"0-based indices: set {path}.{name} to a number, or set header: true."
                    )
        for name in ("text_column", "text_pair_column", "label_column"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 0:
                raise SpecError(f"{path}.{name} must be a 0-based column index >= 0, got {value}.")
        if not self.label_separator:
            raise SpecError(f"{path}.label_separator must not be empty.")


@dataclass(frozen=True)
class ModelConfig:
    """Which pretrained model to start from.

    ``name``: a registered alias (``minilm``, the packaged all-MiniLM-L6-v2, is
    the default) or the path of a local Hugging Face model folder.
    """

    name: str = "minilm"


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the validation ``metric`` has not improved by ``min_delta`` for
    ``patience`` evaluations (0 disables). The best weights are kept. ``metric``
    defaults to accuracy (single-label), micro_f1 (multi-label) or f1 (question
    answering); ``loss`` is minimised, everything else maximised."""

    patience: int = 0
    metric: Optional[str] = None
    min_delta: float = 0.0

    def _validate(self, path: str) -> None:
        if self.patience < 0:
            raise SpecError(f"{path}.patience must be >= 0 (0 disables early stopping), got {self.patience}.")
        if self.min_delta < 0:
            raise SpecError(f"{path}.min_delta must be >= 0, got {self.min_delta}.")


@dataclass(frozen=True)
class TrainingConfig:
    """How to fine-tune.

    ``warmup_ratio`` is the share of optimizer steps with a linear learning-rate
    ramp; the rate then decays linearly to 0. ``batch_size`` counts examples
    per forward pass; the optimizer sees ``batch_size * gradient_accumulation_steps``.
    ``eval_interval``/``log_interval`` count optimizer steps; an ``eval_interval``
    of 0 evaluates at the end of each epoch, and training always ends with an
    evaluation. ``restore_best`` puts back the weights of the best evaluation when
    training ends, so the saved model and its recorded metrics are the best seen
    (off: the last weights and the last evaluation's metrics). ``group_by_length``
    batches examples of similar length together (less padding, same examples per epoch).
    ``checkpoint_dir`` (relative to the spec file) turns on checkpoints every
    ``checkpoint_interval`` optimizer steps (0: after each epoch); a run that finds a
    checkpoint of the same spec and data there resumes from it.
    """

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    max_seq_length: int = 128
    seed: int = 42
    mixed_precision: bool = False
    eval_interval: int = 0
    log_interval: int = 50
    group_by_length: bool = True
    restore_best: bool = True
    checkpoint_dir: Optional[str] = None
    checkpoint_interval: int = 0
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def _validate(self, path: str) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_interval"):
            if getattr(self, name) < 1:
                raise SpecError(f"{path}.{name} must be >= 1, got {getattr(self, name)}.")
        if self.checkpoint_interval < 0:
            raise SpecError(f"{path}.checkpoint_interval must be >= 0 (0 = after each epoch), got {self.checkpoint_interval}.")
        if self.eval_interval < 0:
            raise SpecError(f"{path}.eval_interval must be >= 0 (0 = end of each epoch), got {self.eval_interval}.")
        if not 8 <= self.max_seq_length <= 8192:
            raise SpecError(f"{path}.max_seq_length must be between 8 and 8192, got {self.max_seq_length}.")
        if not 0 < self.learning_rate < 1:
            raise SpecError(f"{path}.learning_rate must be in (0, 1), got {self.learning_rate}.")
        if not 0 <= self.warmup_ratio < 1:
            raise SpecError(f"{path}.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if not 0 <= self.seed < 2**32:
            raise SpecError(f"{path}.seed must be between 0 and 2**32 - 1, got {self.seed}.")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise SpecError(f"{path}.weight_decay and {path}.max_grad_norm must be >= 0 (max_grad_norm 0 disables clipping).")


DEBUGGER_RULES = ("loss_not_decreasing", "overfit")


@dataclass(frozen=True)
class DebuggerConfig:
    """SageMaker Debugger (``smdebug``) capture while training (backends with ``debugger``
    support: mxnet).

    With ``attention: true`` the run writes an smdebug trial to ``out_dir`` (relative
    to the spec file; default: the model folder's path plus ``-debug``) holding, in
    evaluation mode, each layer's attention weights, the attention cells' inputs and
    query/key projections and the token ids of the first ``examples`` validation
    examples, recorded at the optimizer ``steps`` listed (0: before the first update;
    default: 0 and every evaluation) and at every evaluation, where the validation
    loss is recorded too; and, in training mode, the loss of every micro-batch.
    After training the ``rules`` run against the trial and their verdicts are printed
    and saved to ``bertbridge-debug.json`` in the trial folder.
    ``bertbridge attention TRIAL --step N`` renders a recorded step.
    """

    attention: bool = False
    out_dir: Optional[str] = None
    steps: Optional[tuple[int, ...]] = None
    examples: int = 4
    rules: tuple[str, ...] = DEBUGGER_RULES

    def _validate(self, path: str) -> None:
        if not 1 <= self.examples <= 64:
            raise SpecError(f"{path}.examples must be between 1 and 64, got {self.examples}.")
        if self.steps is not None and any(s < 0 for s in self.steps):
            raise SpecError(f"{path}.steps must be optimizer steps >= 0 (0 = before the first update), got {list(self.steps)}.")
        unknown = [r for r in self.rules if r not in DEBUGGER_RULES]
        if unknown:
            raise SpecError(f"{path}.rules has {unknown[0]!r}; known rules: {', '.join(DEBUGGER_RULES)}.")


@dataclass(frozen=True)
class DistributionConfig:
    """Data-parallel training on the backend's own distributed engine (PyTorch
    DistributedDataParallel, TensorFlow MultiWorkerMirroredStrategy, MXNet's ``dist_sync``
    kvstore).

    ``processes_per_host`` workers run on each of ``hosts`` machines. ``training.batch_size``
    and ``gradient_accumulation_steps`` stay *global*: each forward pass's examples are split
    across the workers and their gradients summed by the engine, so every optimizer step sees
    the same examples as single-process training. Rank 0 alone logs, evaluates, checkpoints
    and saves. ``timeout`` (seconds) bounds how long a worker waits for a peer before the job
    fails. ``port`` is the first TCP port of a multi-host job (the local launcher picks free
    ports itself); it must be open between the hosts.
    """

    processes_per_host: int = 1
    hosts: int = 1
    timeout: int = 300
    port: int = 29500

    def _validate(self, path: str) -> None:
        for name in ("processes_per_host", "hosts"):
            if getattr(self, name) < 1:
                raise SpecError(f"{path}.{name} must be >= 1, got {getattr(self, name)}.")
        if self.timeout < 10:
            raise SpecError(f"{path}.timeout must be at least 10 seconds, got {self.timeout}.")
        if not 1024 <= self.port <= 65000:
            raise SpecError(f"{path}.port must be between 1024 and 65000, got {self.port}.")

    @property
    def world_size(self) -> int:
        """The number of training processes in the job."""
        return self.processes_per_host * self.hosts


@dataclass(frozen=True)
class TrackingConfig:
    """Experiment tracking by the built-in plugin (:mod:`bertbridge.core.plugins.tracking`).

    ``tensorboard``: a folder (relative to the spec file) for TensorBoard event files, one
    subfolder per run, written with ``tensorboardX`` (no TensorFlow needed); scalars keep the
    log lines' names. ``mlflow: true`` logs the run to MLflow: the resolved spec as params, the
    metrics per optimizer step, the model folder as artifacts. ``mlflow_uri`` is the tracking
    URI (default: ``$MLFLOW_TRACKING_URI``, else MLflow's own default, ``sqlite:///mlflow.db`` in
    the working folder); ``experiment`` is created when missing. Only rank 0 of a data-parallel
    job tracks. Needs ``pip install 'bertbridge[tracking]'``.
    """

    tensorboard: Optional[str] = None
    mlflow: bool = False
    mlflow_uri: Optional[str] = None
    experiment: str = "bertbridge"

    def _validate(self, path: str) -> None:
        if not self.experiment.strip():
            raise SpecError(f"{path}.experiment must name an MLflow experiment, got an empty string.")
        if self.mlflow_uri is not None and not self.mlflow:
            raise SpecError(f"{path}.mlflow_uri is set but {path}.mlflow is false; set {path}.mlflow: true to log to it.")


SEARCH_DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
TUNABLE_SECTIONS = ("task", "model", "training")


@dataclass(frozen=True)
class SearchParameter:
    """One searched spec field: ``path`` (dotted, e.g. ``training.learning_rate``), ``kind``
    (one of :data:`SEARCH_DISTRIBUTIONS`) and ``values`` (``[low, high]`` for the ranges, both
    included; the options for ``choice``)."""

    path: str
    kind: str
    values: tuple


@dataclass(frozen=True)
class SearchSpace:
    """The ``tuning.parameters`` mapping: ``{dotted.field: {kind: values}}``, in the spec's order."""

    parameters: tuple[SearchParameter, ...] = ()

    @classmethod
    def _from_spec(cls, value: Any, path: str) -> "SearchSpace":
        if isinstance(value, SearchSpace):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise SpecError(f"{path} must map spec fields to distributions, e.g. "
                            "{training.learning_rate: {log_uniform: [1e-5, 1e-4]}}; got " + _show(value) + ".")
        return cls(tuple(_search_parameter(str(key), dist, f"{path}.{key}") for key, dist in value.items()))

    def _to_spec(self) -> dict:
        return {p.path: {p.kind: list(p.values)} for p in self.parameters}


def _search_parameter(key: str, dist: Any, path: str) -> SearchParameter:
    example = f"e.g. {{log_uniform: [1e-5, 1e-4]}} or {{choice: [2, 3]}}; kinds: {', '.join(SEARCH_DISTRIBUTIONS)}"
    if not isinstance(dist, Mapping) or len(dist) != 1:
        raise SpecError(f"{path} must be one distribution, {example}; got {_show(dist)}.")
    kind, values = next(iter(dist.items()))
    if isinstance(values, Mapping):  # training: {learning_rate: {...}}, or a --set into the mapping
        raise SpecError(f"{path}.{kind}: write each searched field as one dotted key, e.g. "
                        f"'{key}.{kind}: {{log_uniform: [1e-5, 1e-4]}}'; to change the search from the command line, "
                        "--set the whole mapping: --set 'tuning.parameters={training.learning_rate: {log_uniform: [1e-5, 1e-4]}}'.")
    if kind not in SEARCH_DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), SEARCH_DISTRIBUTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SpecError(f"{path}.{kind} is not a distribution; use one of: {', '.join(SEARCH_DISTRIBUTIONS)}.{hint}")
    if not isinstance(values, (list, tuple)) or not values:
        raise SpecError(f"{path}.{kind} must be a list ({example}); got {_show(values)}.")
    if kind == "choice":
        if any(isinstance(v, (list, dict)) or v is None for v in values):
            raise SpecError(f"{path}.choice options must be numbers, strings or true/false; got {_show(list(values))}.")
        return SearchParameter(key, kind, tuple(values))
    values = [_number(v) for v in values]  # YAML reads 1e-5 (no dot) as a string
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise SpecError(f"{path}.{kind} must be [low, high] (two numbers); got {_show(list(values))}.")
    low, high = values
    if kind == "int_uniform" and not all(float(v).is_integer() for v in values):
        raise SpecError(f"{path}.int_uniform must be [low, high] with whole numbers; got {_show(list(values))}.")
    if not low < high:
        raise SpecError(f"{path}.{kind}: low must be below high; got [{low}, {high}].")
    if kind == "log_uniform" and low <= 0:
        raise SpecError(f"{path}.log_uniform needs low > 0 (a log scale); got {low}.")
    if kind == "int_uniform":
        return SearchParameter(key, kind, (int(low), int(high)))
    return SearchParameter(key, kind, (float(low), float(high)))


def _number(value: Any) -> Any:
    """``value``, or the number a string such as ``'1e-5'`` spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class TuningConfig:
    """Hyperparameter search: ``bertbridge tune`` (Optuna, on this machine) and
    ``bertbridge sagemaker tune`` (a SageMaker hyperparameter tuning job). Plain training ignores it.

    ``parameters`` maps spec fields of ``task``, ``model`` or ``training`` to a distribution:
    ``{uniform: [low, high]}``, ``{log_uniform: [low, high]}``, ``{int_uniform: [low, high]}``
    or ``{choice: [a, b, ...]}``. Each trial trains the spec with the sampled values and is
    scored by the validation ``metric`` of the model it saves (default: the run's early-stopping
    metric). The task says which metrics are minimised (``loss``, ``hamming_loss``) and which
    maximised; ``direction``, if given, must agree.
    ``trials`` trials run; with ``pruning`` a trial whose metric at its k-th evaluation is worse
    than the median of earlier trials at their k-th stops there (a trial evaluates once per epoch,
    or every ``training.eval_interval`` steps). ``seed`` seeds the sampler (default:
    ``training.seed``). The trials table, plot and trial folders go to ``out_dir`` (default:
    ``<output_dir>-tuning``); the best trial's model folder is saved to ``output_dir``.
    ``max_parallel`` is the number of SageMaker training jobs run at once (the local search runs
    one trial at a time).
    """

    parameters: SearchSpace = field(default_factory=SearchSpace)
    metric: Optional[str] = None
    direction: Optional[str] = field(default=None, metadata=_choices("maximize", "minimize"))
    trials: int = 10
    pruning: bool = True
    seed: Optional[int] = None
    out_dir: Optional[str] = None
    max_parallel: int = 1

    def _validate(self, path: str) -> None:
        if self.trials < 1:
            raise SpecError(f"{path}.trials must be >= 1, got {self.trials}.")
        if self.max_parallel < 1:
            raise SpecError(f"{path}.max_parallel must be >= 1, got {self.max_parallel}.")
        seen = [p.path for p in self.parameters.parameters]
        for param in self.parameters.parameters:
            section = param.path.split(".")[0]
            if section not in TUNABLE_SECTIONS:
                raise SpecError(f"{path}.parameters.{param.path}: only fields of {', '.join(TUNABLE_SECTIONS)} can be "
                                f"searched (e.g. training.learning_rate); {section!r} is not one of them.")
            if seen.count(param.path) > 1:
                raise SpecError(f"{path}.parameters lists {param.path} more than once.")


@dataclass(frozen=True)
class TaskSpec:
    """The whole spec. ``backend`` (optional) picks the framework; see
    :func:`bertbridge.core.plugins.registry.select_backend` for the order of precedence.
    ``output_dir`` is where the trained model folder is written."""

    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    debugger: DebuggerConfig = field(default_factory=DebuggerConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    backend: Optional[str] = None
    output_dir: str = "outputs/model"

    # -- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: Union[str, Path, None] = None) -> "TaskSpec":
        """Build and validate a spec from a dict. Relative paths in ``data.*``,
        ``model.name`` (when it is a path) and ``output_dir`` are resolved against
        ``base_dir`` when it is given (``from_file`` passes the spec's folder)."""
        spec = _build(cls, data, "spec")
        return spec._resolve_paths(Path(base_dir)) if base_dir is not None else spec

    @classmethod
    def from_file(cls, path: Union[str, Path], overrides: Sequence[str] = ()) -> "TaskSpec":
        """Read a ``.yaml``/``.yml``/``.json`` spec, apply ``key.path=value``
        overrides, validate, and resolve relative paths against the file's folder."""
        path = Path(path)
        raw = load_mapping(path)
        raw = apply_overrides(raw, overrides)
        try:
            return cls.from_dict(raw, base_dir=path.resolve().parent)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def to_dict(self) -> dict:
        """A plain, JSON/YAML-serialisable dict; ``from_dict`` of it equals this spec."""
        return _to_plain(self)

    def with_overrides(self, overrides: Sequence[str]) -> "TaskSpec":
        """A new spec with ``dotted.key=value`` overrides applied (values parsed as YAML)."""
        return TaskSpec.from_dict(apply_overrides(self.to_dict(), overrides))

    def replace(self, **changes: Any) -> "TaskSpec":
        """A validated copy with top-level fields replaced."""
        return TaskSpec.from_dict({**self.to_dict(), **{k: _to_plain(v) for k, v in changes.items()}})

    def _validate(self, path: str) -> None:
        for param in self.tuning.parameters.parameters:
            _check_searchable(self, param, f"{path}.tuning.parameters.{param.path}")

    # -- helpers ----------------------------------------------------------
    def _resolve_paths(self, base: Path) -> "TaskSpec":
        def resolve(p: Optional[str]) -> Optional[str]:
            if p is None:
                return p
            p = os.path.expanduser(p)
            return p if os.path.isabs(p) else str((base / p).resolve())

        training = dataclasses.replace(self.training, checkpoint_dir=resolve(self.training.checkpoint_dir))
        data = dataclasses.replace(
            self.data,
            train=resolve(self.data.train),
            validation=resolve(self.data.validation),
            test=resolve(self.data.test),
            labels_file=resolve(self.data.labels_file),
        )
        model = self.model
        candidate = base / model.name
        if not os.path.isabs(model.name) and (os.sep in model.name or candidate.is_dir()):
            model = dataclasses.replace(model, name=str(candidate.resolve()))
        debugger = dataclasses.replace(self.debugger, out_dir=resolve(self.debugger.out_dir))
        tracking = dataclasses.replace(self.tracking, tensorboard=resolve(self.tracking.tensorboard))
        tuning = dataclasses.replace(self.tuning, out_dir=resolve(self.tuning.out_dir))
        return dataclasses.replace(
            self, data=data, model=model, training=training, debugger=debugger, tracking=tracking, tuning=tuning,
            output_dir=resolve(self.output_dir),
        )


def _check_searchable(spec: "TaskSpec", param: SearchParameter, path: str) -> None:
    """``param`` names a field of ``spec`` that its distribution can fill, and every value it can
    take (the range's ends, each option) makes a valid spec."""
    node: Any = spec
    hint: Any = TaskSpec
    for part in param.path.split("."):
        if node is None and hint is not TaskSpec:  # an optional section the spec leaves out (task.long_text)
            raise SpecError(f"{path}: {param.path} is inside a section this spec does not set; set it first "
                            "(e.g. task.long_text: {}), then search its fields.")
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            raise SpecError(f"{path}: {param.path} is not a spec field (e.g. training.learning_rate, training.epochs).")
        hint = typing.get_type_hints(type(node))[part]
        node = getattr(node, part)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    leaf = args[0] if typing.get_origin(hint) is Union and len(args) == 1 else hint
    if dataclasses.is_dataclass(leaf) or leaf not in (int, float, str, bool):
        raise SpecError(f"{path}: {param.path} is not a single value that can be searched.")
    if param.kind in ("uniform", "log_uniform") and leaf is not float:
        raise SpecError(f"{path}: {param.path} takes {_type_name(leaf)}; {param.kind} draws real numbers, "
                        "so use int_uniform or choice.")
    if param.kind == "int_uniform" and leaf not in (int, float):
        raise SpecError(f"{path}: {param.path} takes {_type_name(leaf)}; use choice.")
    plain = _to_plain(dataclasses.replace(spec, tuning=TuningConfig()))
    for value in param.values:
        try:
            _build(TaskSpec, apply_overrides(plain, [f"{param.path}={json.dumps(value)}"]), "spec")
        except SpecError as exc:
            raise SpecError(f"{path}: the value {_show(value)} is not valid there: {exc}") from None


# ---------------------------------------------------------------------------
# file loading and overrides

def load_mapping(path: Path) -> dict:
    """Read a YAML or JSON file that must hold a mapping; errors name the file and the fix.

    A key given twice in one mapping is refused (naming both lines), and so are YAML aliases
    that expand to more than :data:`MAX_SPEC_VALUES` values (a "billion laughs" file)."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise SpecError(f"{path}: a spec file must end in .yaml, .yml or .json (got {suffix or 'no extension'!r}).")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found. Check the path (relative paths start from {Path.cwd()}).") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); re-save the spec as UTF-8.") from None
    raw = _parse_json(path, text) if suffix == ".json" else _parse_yaml(path, text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the top level must be a mapping of sections (task, data, model, training, ...), got {type(raw).__name__}.")
    return raw


MAX_SPEC_VALUES = 100_000
"""The most values a YAML spec may expand to once its aliases are followed."""


def _parse_json(path: Path, text: str) -> Any:
    def unique(pairs: list) -> dict:
        counts = collections.Counter(k for k, _ in pairs)
        for key, count in counts.items():
            if count > 1:
                lines = [i + 1 for i, line in enumerate(text.splitlines()) if re.search(rf'"{re.escape(key)}"\s*:', line)]
                where = f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""
                raise SpecError(f"{path}: key {_show(key)} appears twice in one object{where}; keep one of them.")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
    except RecursionError:
        raise SpecError(f"{path}: the JSON is nested too deeply for a spec.") from None


def _parse_yaml(path: Path, text: str) -> Any:
    loader = _spec_loader(path)(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_SPEC_VALUES:
            raise SpecError(f"{path}: its YAML aliases expand to more than {MAX_SPEC_VALUES:,} values; a spec needs "
                            "far fewer. Write the values out instead of nesting aliases.")
        return loader.construct_document(node) if node is not None else None
    except SpecError:
        raise
    except RecursionError:
        raise SpecError(f"{path}: the YAML is nested too deeply for a spec.") from None
    except Exception as exc:  # yaml.YAMLError, or a value YAML cannot build (a date such as 2020-02-30)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path}: invalid YAML{where}: {problem}.") from None
    finally:
        loader.dispose()


def _expanded_size(node: Any, memo: dict) -> int:
    """Values under ``node`` with every alias followed (shared nodes counted once per use)."""
    if id(node) not in memo:
        memo[id(node)] = 0  # a recursive alias: count it once, construction reports it
        children = node.value if isinstance(node.value, list) else []
        parts = [c for pair in children for c in (pair if isinstance(pair, tuple) else (pair,))]
        memo[id(node)] = min(1 + sum(_expanded_size(c, memo) for c in parts), MAX_SPEC_VALUES + 1)
    return memo[id(node)]


def _spec_loader(path: Path):
    """A safe YAML loader that refuses a key given twice in one mapping, naming both lines."""
    import yaml

    class SpecLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise SpecError(f"{path}: key {_show(key)} appears twice in one mapping (lines {seen[key]} and "
                                    f"{line}); keep one of them.")
                seen[key] = line
            return super().construct_mapping(node, deep)

    return SpecLoader


def _show(value: Any) -> str:
    """``repr`` cut to a readable length (errors never format an unbounded value)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlevel = 80, 80, 2
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 5
    text = short.repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (a deep copy is returned).

    Values are parsed as YAML, so ``3`` is an int, ``true`` a bool, ``[a, b]`` a list
    and ``null`` clears a field.
    """
    import copy

    import yaml

    result = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError(f"override {item!r} is not of the form section.field=value (e.g. training.epochs=3).")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise SpecError(f"override {item!r}: {part!r} is a value, not a section.")
            node = child
        node[parts[-1]] = parsed
    return result


# ---------------------------------------------------------------------------
# generic typed construction

def _build(cls: type, data: Any, path: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(f"{path} must be a mapping of fields, got {type(data).__name__} {_show(data)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SpecError(f"{path}.{key} is not a known field.{hint} Known fields of {path}: {', '.join(fields)}.")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        kwargs[name] = _coerce(value, hints[name], f"{path}.{name}", f.metadata.get("choices"))
    obj = cls(**kwargs)
    validate = getattr(obj, "_validate", None)
    if validate is not None:
        validate(path)
    return obj


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, path: str, choices: Optional[tuple] = None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if non_none == [str, int] or non_none == [int, str]:  # Column
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise SpecError(f"{path} must be a column name or a 0-based column index, got {_show(value)}.")
            return value
        return _coerce(value, non_none[0], path, choices)
    parse = getattr(tp, "_from_spec", None)  # a field type with a spec syntax of its own (SearchSpace)
    if parse is not None:
        return parse(value, path)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, path)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise SpecError(f"{path} must be a list, got {_show(value)}.")
        if not value:
            raise SpecError(f"{path} must not be an empty list (leave it out instead).")
        if args and args[0] is int:
            return tuple(_coerce(v, int, f"{path}[{i}]") for i, v in enumerate(value))
        for item in value:
            if item is None or isinstance(item, (bool, list, dict)):
                raise SpecError(
                    f"{path} has {_show(item)}, which is not a label name. In YAML, yes/no/true/false/null are not "
                    "strings: quote them, e.g. ['yes', 'no']."
                )
        return tuple(str(v) for v in value)
    if value is None:
        raise SpecError(f"{path} must be {_type_name(tp)}, not null.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SpecError(f"{path} must be true or false, got {_show(value)}.")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SpecError(f"{path} must be an integer, got {_show(value)}.")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise SpecError(f"{path} must be a number, got {_show(value)}.")
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise SpecError(f"{path} must be a number, got {_show(value)}.") from None
        if not isinstance(value, (int, float)):
            raise SpecError(f"{path} must be a number, got {_show(value)}.")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SpecError(f"{path} must be a string, got {_show(value)}.")
        value = str(value)
        if choices and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{path} is {_show(value)}; it must be one of: {', '.join(choices)}.{hint}")
        return value
    raise TypeError(f"unsupported spec field type {tp!r} at {path}")  # a bug in the spec classes


def _to_plain(obj: Any) -> Any:
    if hasattr(obj, "_to_spec"):
        return obj._to_spec()
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj
