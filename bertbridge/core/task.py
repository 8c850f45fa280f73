"""The contract every task implements. A task is a plugin, exactly like a backend.

A task is what is predicted (``task.type`` in the spec): the built-in
``text_classification`` and ``question_answering`` register through the same hook and
entry-point group a third-party package uses. Core owns everything that is the same for
every task (the training loop, checkpoints, logging, the end of a run, artifacts,
serving); a :class:`Task` supplies what differs:

* :meth:`Task.read_data` reads and tokenizes every split named by the spec and says what
  the model needs (:class:`TaskData`: the manifest and the backend's
  :class:`~bertbridge.core.backend.ModelSetup`, whose ``head`` every backend builds);
* :meth:`Task.monitors` lists the validation metrics early stopping may watch;
* :meth:`Task.predictor` wraps a backend model into the object :func:`bertbridge.train`
  and :func:`bertbridge.load` return (predict, evaluate, save, the serving shapes);
* optional: :meth:`check_spec`, :meth:`export_tfrecord`, and the command-line glue
  :meth:`cli_predict` / :meth:`cli_evaluate`.

A task module imports no framework: the backend builds the model.

Example, a third-party task package's plugin module (entry point
``bertbridge.tasks: my_task = my_package.plugin``)::

    from bertbridge.core.hookspecs import hookimpl

    @hookimpl
    def bertbridge_register_tasks(registry):
        from my_package.task import MyTask
        registry.add(MyTask())
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Optional, Protocol, Union

import numpy as np

from bertbridge.core.errors import DataError, NotSupportedError, SpecError

if TYPE_CHECKING:  # pragma: no cover
    from bertbridge.core.backend import InferenceModel, ModelSetup
    from bertbridge.core.io.artifacts import Manifest
    from bertbridge.core.reports.record import RunRecord
    from bertbridge.core.spec import TaskSpec
    from bertbridge.core.text.tokenize import TextEncoder


class Split(Protocol):
    """A read and tokenized data file, as the training loop consumes it."""

    path: str
    features: Any
    """Batched by :func:`bertbridge.core.text.batching.collate`: ``input_ids``, ``token_type_ids``, ``lengths``."""
    targets: Any
    """What the loss compares with (numpy), or None for unlabelled data."""


class Predictor(Protocol):
    """What :func:`bertbridge.train` and :func:`bertbridge.load` return for a task."""

    manifest: "Manifest"
    path: Optional[Path]
    running_backend: Optional[str]
    """The backend :func:`bertbridge.load` chose to run the model (``manifest.backend`` trained it)."""
    run: Optional["RunRecord"]
    """The run record of the training run (resolved spec, metric history) when known: set by
    training and by :func:`bertbridge.load`; a save writes it with the curves (optional for a
    third-party predictor, read with ``getattr``)."""

    def predict(self, inputs: Any) -> list[dict[str, Any]]:
        """One JSON-ready dict per input."""

    def evaluate(self, path: Union[str, Path]) -> dict[str, float]:
        """Metrics on a labelled file."""

    def evaluate_split(self, split: Any, *, show_progress: bool = True) -> dict[str, float]:
        """Metrics on a split read by :meth:`Task.read_data` (``loss`` among them)."""

    def save(self, directory: Union[str, Path], *, metrics: Optional[dict[str, float]] = None) -> Path:
        """Write the model folder atomically (see :func:`bertbridge.core.tasks.saving.save_model_folder`)."""

    def normalize_request(self, items: list) -> list:
        """Serving: check parsed request items, raising ``RequestError`` (HTTP 400) for bad ones."""


@dataclass
class TaskData:
    """Everything a task read for a training run, before any model exists."""

    manifest: "Manifest"
    """Saved as ``bertbridge.json`` (name the ``backend`` given to :meth:`Task.read_data`); the run's
    metrics, library versions and time are added by :func:`bertbridge.core.tasks.saving.save_model_folder`."""
    setup: "ModelSetup"
    """What the backend builds: the task sets ``num_labels``, ``multi_label`` and ``id2label``; the run
    sets ``head`` (:attr:`Task.head`) and the spec's ``seed``, ``mixed_precision``, ``weight_decay`` and
    ``max_grad_norm``."""
    train: Split
    validation: Optional[Split] = None
    test: Optional[Split] = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Extra numbers saved with the run's metrics (e.g. ``train_windows``)."""


class Task(abc.ABC):
    """A task plugin. Subclasses set :attr:`name` and implement the abstract methods."""

    name: ClassVar[str]
    """The spec's ``task.type`` and the manifest's ``task``, e.g. ``"text_classification"``."""
    summary: ClassVar[str] = ""
    """One line for ``bertbridge tasks``."""
    head: ClassVar[str] = "sequence"
    """The model head backends build for it (``sequence`` or ``span``; see
    :class:`~bertbridge.core.backend.ModelSetup`): every backend with that head in its ``heads`` runs the task."""
    minimized: ClassVar[tuple[str, ...]] = ("loss",)
    """Validation metrics where lower is better (early stopping and best weights)."""
    debugger: ClassVar[bool] = False
    """True when ``debugger.attention`` can record this task's runs (its splits have ``examples``
    with ``text`` and ``text_pair``)."""
    exportable: ClassVar[bool] = False
    """True when the backends' export formats (``savedmodel``, ``torchscript``, ``onnx``) serve it."""
    train_hint: ClassVar[str] = "the training file"
    """What ``data.train`` should be, for the error when it is missing."""
    pipeline_tag: ClassVar[str] = ""
    """The Hugging Face Hub task name model cards give (``text-classification``); "" for none."""

    def card_example(self, manifest: "Manifest") -> Any:
        """A ``predict`` argument the model card shows (JSON-ready). Default: one sentence."""
        return ["An absolute joy from start to finish."]

    def check_spec(self, spec: "TaskSpec") -> None:
        """Task-specific checks of the spec's fields, when a spec is loaded (before any file is
        read; data paths may still be unset); raise :class:`~bertbridge.core.errors.SpecError`
        naming the field. Default: ``task.multi_label`` is refused (a classification option)."""
        if spec.task.multi_label:
            raise SpecError(f"spec.task.multi_label only applies to type 'text_classification', not {self.name!r}.")
        if spec.task.long_text is not None:
            raise SpecError(f"spec.task.long_text only applies to type 'text_classification', not {self.name!r}.")

    @abc.abstractmethod
    def monitors(self, spec: "TaskSpec") -> tuple[str, ...]:
        """The validation metrics ``training.early_stopping.metric`` may name."""

    def default_monitor(self, spec: "TaskSpec") -> str:
        """The metric watched when the spec names none. Default: the first of :meth:`monitors`."""
        return self.monitors(spec)[0]

    def quality_metric(self, manifest: "Manifest") -> tuple[str, float]:
        """The evaluation metric a quantized export is judged by (higher is better) and how many
        points one unit of it is (100 for a 0-1 accuracy, 1 for an F1 already in points).
        Default: none, so quantized exports of this task are refused."""
        raise NotSupportedError(f"{self.name} names no quality metric, so its exports cannot be quantized "
                                "(the accuracy budget needs one); export without --quantize.")

    @abc.abstractmethod
    def read_data(self, spec: "TaskSpec", encoder: "TextEncoder", backend: str) -> TaskData:
        """Read, check and tokenize ``data.train`` (and ``validation``/``test`` when set) with
        ``encoder``; raise :class:`~bertbridge.core.errors.DataError` naming the file and row.
        ``backend`` is the backend's name, for the manifest."""

    @abc.abstractmethod
    def model_setup(self, manifest: "Manifest") -> "ModelSetup":
        """What a backend needs to open a saved model of this task."""

    @abc.abstractmethod
    def predictor(self, model: "InferenceModel", encoder: "TextEncoder", manifest: "Manifest", *,
                  batch_size: int) -> Predictor:
        """The predictor around a backend model (freshly built for training, or loaded)."""

    def export_tfrecord(self, spec: "TaskSpec", split: str, out_dir: Path, *, shards: int,
                        fixed_length: bool) -> list[Path]:
        """Tokenize one split into TFRecord shards (Pipe mode). Default: not supported."""
        raise NotSupportedError(f"{self.name} data cannot be exported as TFRecord shards; "
                                "Pipe mode and export-tfrecord are for text_classification.")

    # -- command-line glue -----------------------------------------------------------
    def cli_evaluate(self, predictor: Predictor, data: str, predictions_out: Optional[str]) -> dict[str, float]:
        """``bertbridge evaluate``'s metrics. Default: :meth:`Predictor.evaluate`; ``--predictions-out`` refused."""
        if predictions_out:
            raise DataError(f"--predictions-out is not available for {self.name} models.")
        return predictor.evaluate(data)

    def probe_inputs(self, manifest: "Manifest") -> list[tuple[str, Optional[str]]]:
        """A few ``(text, text_pair)`` inputs the model card's cross-framework check runs. Default: two sentences."""
        return [("An absolute joy from start to finish.", None), ("The battery died after one day.", None)]

    def explain_target(self, manifest: "Manifest", logits: np.ndarray, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, str]:
        """What ``bertbridge explain`` attributes, for one example's ``logits`` (batch of 1): weights of
        the logits' shape whose dot product with them is the explained score, and its name. Default:
        the highest logit's label (``"label positive"``)."""
        index = int(np.argmax(logits[0]))
        weights = np.zeros_like(logits, dtype=np.float32)
        weights[0, index] = 1.0
        return weights, f"label {manifest.labels[index]}"

    def cli_single_input(self, args: Any) -> tuple[str, Optional[str]]:
        """The one input of ``bertbridge attention MODEL`` and ``bertbridge explain`` (``args.command``) as
        ``(text, text_pair)`` from ``args`` (``text``, ``text_pair``, ``question``, ``context``: lists or None).
        Default: one ``--text``, maybe a ``--text-pair``."""
        if not args.text or len(args.text) != 1 or args.question or args.context or len(args.text_pair or []) > 1:
            raise DataError(f"bertbridge {args.command} runs a {self.name} model on one --text (and at most one --text-pair).")
        return args.text[0], (args.text_pair or [None])[0]

    resumable_predict: bool = False
    """True when :meth:`cli_predict` honours ``args.skip``, so ``bertbridge predict --resume`` may continue
    an output file: one row per input, in input order, with the first ``args.skip`` inputs left out
    (not predicted)."""

    def cli_predict(self, predictor: Predictor, args: Any) -> Iterable[dict[str, Any]]:
        """``bertbridge predict``'s output rows, written as they come (a generator streams a large
        ``--input``); ``args`` has ``text``, ``text_pair``, ``question``, ``context`` and ``input`` (lists
        or None) and ``skip`` (see :attr:`resumable_predict`). Default: one row per ``--text``."""
        if not args.text or args.text_pair or args.question or args.context or args.input:
            raise DataError(f"{self.name} models predict from --text only.")
        return [{"text": t, **row} for t, row in zip(args.text, predictor.predict(list(args.text)))]
