"""The contract every backend implements, and nothing framework-specific.

Core owns everything that must behave the same on every framework: reading
and tokenizing data, batching, the learning-rate schedule, the training loop
(logging, evaluation, early stopping), metrics, the artifact layout and the
manifest. A backend supplies the few operations that need its framework:

* :meth:`Backend.create_model` builds a trainable classifier from a pretrained
  Hugging Face folder;
* :meth:`Backend.load_model` opens a saved bertbridge artifact for inference;
* the returned :class:`TrainableModel` runs forward/backward passes and
  optimizer steps on numpy batches, predicts logits, snapshots weights and
  writes ``config.json`` + ``model.safetensors`` (Hugging Face PyTorch names, so
  every backend reads every other backend's artifacts).

A backend module must import its framework lazily (inside these methods),
so that listing backends or using another backend never imports it.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional

import numpy as np

from bertbridge.core.errors import BackendUnavailableError, NotSupportedError

if TYPE_CHECKING:
    from bertbridge.core.distributed.collective import Cluster, Collective, Proc
    from bertbridge.core.io.architectures import Architecture

Batch = Mapping[str, np.ndarray]
"""A batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, shape
(B, T)) and, when training, ``labels``: int64 (B,) or float32 (B, K) for multi-label
(``sequence`` head); int64 (B, 2) start and end token positions (``span`` head)."""

HEADS = ("sequence", "span")

THREADS_ENV = "BERTBRIDGE_THREADS"


def intra_op_threads() -> Optional[int]:
    """Threads one forward pass may use (the framework's intra-op pool), from ``BERTBRIDGE_THREADS``;
    None: the framework's default (every core). ``bertbridge serve --workers N`` sets it to cores / N,
    so N processes do not fight over the cores."""
    import os

    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BackendUnavailableError(f"{THREADS_ENV}={value!r}: give a whole number of threads (1 or more), or unset it.")
    return int(value)


EXPORT_OUTPUTS = {"sequence": ("logits",), "span": ("start_logits", "end_logits")}
"""Output names of an exported model, per head (what every exporter writes and every export loader reads)."""


@dataclass(frozen=True)
class ModelSetup:
    """What a backend needs to build a model.

    ``head``: ``sequence`` (a classifier on the pooled [CLS]: ``BertForSequenceClassification``,
    logits (B, num_labels)) or ``span`` (extractive QA: ``BertForQuestionAnswering``'s
    ``qa_outputs`` on every token, logits (B, T, 2) = start and end; loss = mean of the start
    and end cross-entropies over all T positions, as transformers computes it).
    """

    num_labels: int
    multi_label: bool
    id2label: Mapping[int, str]
    seed: int
    mixed_precision: bool = False
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    head: str = "sequence"


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    version: Optional[str]
    detail: str
    tasks: tuple[str, ...]
    python: Optional[str] = None
    """The interpreter the backend runs in when it is reached by forwarding (``BERTBRIDGE_<NAME>_PYTHON``)."""
    architectures: tuple[str, ...] = ()
    """The ``model_type`` values the backend builds (:attr:`Backend.architectures`)."""


NO_GRADIENTS = ("does not give gradients for token attributions: pass --backend with one that does (pytorch or "
                "tensorflow for the built-in ones); an export folder is explained through the model folder it came from.")


class InferenceModel(abc.ABC):
    """A model that maps a batch to logits."""

    @abc.abstractmethod
    def logits(self, batch: Batch) -> np.ndarray:
        """Float32 logits, in evaluation mode (no dropout): (B, num_labels) for the ``sequence``
        head, (B, T, 2) start/end for the ``span`` head."""

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (Hugging Face naming) into an
        existing, empty ``directory``. Core adds tokenizer files and the manifest."""

    def attentions(self, batch: Batch) -> np.ndarray:
        """Attention weights in evaluation mode, float32 (B, layers, heads, T, T): row ``q`` of a
        head is the softmax over the keys that query ``q`` attends to (padding keys get ~0), as
        ``transformers``' ``output_attentions`` gives them. Optional (``bertbridge attention MODEL``);
        the default refuses."""
        raise NotSupportedError(f"{type(self).__name__} does not expose attention weights; open the model folder "
                                "(not an export) with a backend that trains, or pass --backend.")

    def word_embeddings(self, input_ids: np.ndarray) -> np.ndarray:
        """The word-embedding rows of ``input_ids`` (B, T) as float32 (B, T, hidden): the input
        layer that token attributions (``bertbridge explain``) are taken at. Optional; the default refuses."""
        raise NotSupportedError(f"{type(self).__name__} {NO_GRADIENTS}")

    def embedding_gradients(self, batch: Batch, embeddings: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluation mode, with ``embeddings`` (B, T, hidden) in place of the word embeddings of
        ``batch["input_ids"]`` (position and token-type embeddings as usual): the score
        ``sum(logits * weights)`` per example (B,) and its gradient with respect to ``embeddings``
        (B, T, hidden). ``weights`` has the logits' shape. Optional, with :meth:`word_embeddings`."""
        raise NotSupportedError(f"{type(self).__name__} {NO_GRADIENTS}")


class TrainableModel(InferenceModel):
    """A model being fine-tuned. Core calls, per optimizer step,
    ``accumulate`` once per micro-batch and then ``step`` once."""

    @abc.abstractmethod
    def accumulate(self, batch: Batch, loss_scale: float) -> float:
        """Forward and backward pass in training mode; gradients of ``loss * loss_scale``
        are added to the accumulated ones. Returns the unscaled mean loss."""

    @abc.abstractmethod
    def step(self, learning_rate: float) -> None:
        """Clip accumulated gradients to ``max_grad_norm``, apply one AdamW step at
        ``learning_rate`` (decoupled weight decay, none on biases and LayerNorm), and
        zero the gradients."""

    @abc.abstractmethod
    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of the weights as named numpy arrays, for :meth:`restore` (best-weights keeping;
        checkpoints store it too)."""

    @abc.abstractmethod
    def restore(self, snapshot: Mapping[str, np.ndarray]) -> None:
        """Put back weights taken by :meth:`snapshot`."""

    @abc.abstractmethod
    def training_state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue training exactly: weights, optimizer slots and step
        count, the framework's dropout RNG, as named numpy arrays (written as safetensors)."""

    @abc.abstractmethod
    def load_training_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back a :meth:`training_state`; the next step continues where it was taken."""

    # -- data-parallel training (backends with ``distributed_engine``) ---------
    def distribute(self, collective: "Collective") -> None:
        """Join ``collective``'s data-parallel job: from now on :meth:`step` first makes every
        worker's gradients the *sum* of all workers' accumulated gradients (through the
        engine), and dropout draws a stream of its own on each rank (rank 0 keeps the
        single-process one). Called once on every worker, right after the model is built and
        before any training state is loaded; the workers' weights must be equal afterwards."""
        raise NotSupportedError(f"{type(self).__name__} cannot train data-parallel.")

    def no_sync(self) -> contextlib.AbstractContextManager:
        """Wraps :meth:`accumulate` for every micro-batch of an optimizer step but the last
        (engines that exchange gradients during the backward pass skip it there).
        Default: nothing to skip."""
        return contextlib.nullcontext()


class Backend:
    """A framework backend. Subclasses set the class attributes and implement
    :meth:`create_model` and :meth:`load_model`. A backend that cannot do a task
    leaves it out of ``tasks``, and asking for it raises a clear
    :class:`~bertbridge.core.errors.NotSupportedError` (a backend with no task
    yet needs nothing but the class attributes)."""

    name: ClassVar[str]
    """Registry name, e.g. ``"pytorch"``."""
    extra: ClassVar[str]
    """The ``pip install bertbridge[<extra>]`` that installs the framework."""
    requires: ClassVar[tuple[str, ...]]
    """Top-level modules that must be importable (checked without importing them)."""
    distributions: ClassVar[tuple[str, ...]]
    """Distribution names the framework may be installed as; the first one found gives
    the version ``bertbridge backends`` shows (e.g. ``tensorflow``, ``tensorflow-cpu``)."""
    tasks: ClassVar[tuple[str, ...]] = ()
    """Task types this backend can train and serve (``text_classification``, ...)."""
    heads: ClassVar[tuple[str, ...]] = ()
    """Model heads this backend builds (``sequence``, ``span``: see :class:`ModelSetup`). It can also
    train and serve any registered task whose :attr:`~bertbridge.core.task.Task.head` is among them,
    third-party tasks included."""
    architectures: ClassVar[tuple[str, ...]] = ()
    """Encoder architectures this backend builds, as ``config.json``'s ``model_type`` names them
    (``bert``, ``distilbert``, ``roberta``, ``xlm-roberta``: :mod:`bertbridge.core.io.architectures`).
    A model folder of another is refused by :meth:`check_architecture`, with this list."""
    trains: ClassVar[bool] = True
    """False for inference-only backends (they load exports); training with one is refused up front."""
    exports: ClassVar[tuple[str, ...]] = ()
    """Export formats this backend writes (``savedmodel``, ...); see :meth:`export`."""
    loads_exports: ClassVar[tuple[str, ...]] = ()
    """Export formats this backend opens for inference (:meth:`load_export`): ``bertbridge.load``
    and ``bertbridge serve`` pick it for an export folder of one of them."""
    quantizes: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Per export format, the quantizations :meth:`refine_export` applies (e.g. ``{"onnx": ("int8",)}``);
    a format listed here (even with no quantization) can also be graph-optimized."""
    debugger: ClassVar[bool] = False
    """True when :meth:`debug_session` records SageMaker Debugger trials (``debugger.attention``)."""
    sagemaker_image: ClassVar[Mapping[str, str]] = {}
    """How to find the SageMaker training and inference images: ``framework``, ``version``,
    ``py_version`` (arguments of ``sagemaker.core.image_uris.retrieve``)."""
    sagemaker_image_note: ClassVar[str] = ""
    """Why there is no usable framework image when ``sagemaker_image`` is empty (shown with
    the request for ``--image``)."""
    sagemaker_requirements: ClassVar[tuple[str, ...]] = ()
    """Packages the job installs on top of the framework image (besides bertbridge's own)."""
    distributed_engine: ClassVar[str] = ""
    """The framework's data-parallel engine, in words; empty when the backend trains in one
    process only (then ``distribution`` asking for more is refused up front)."""
    entry_point: ClassVar[str] = "sagemaker_entry.py"
    """The SageMaker script-mode entry point, a file in the backend's package."""

    def entry_point_path(self) -> Path:
        """The script-mode entry point file (what a training job runs)."""
        import sys

        return Path(sys.modules[type(self).__module__].__file__).parent / self.entry_point  # type: ignore[arg-type]

    def package_for_serving(self, artifact_dir: Path, out_dir: Path) -> None:
        """Lay out ``out_dir`` as this framework's serving container expects inside
        ``model.tar.gz``. Default (PyTorch/MXNet inference toolkits): the model folder at the
        root and ``code/`` with ``inference.py`` pointing at :mod:`bertbridge.core.serving.handlers`,
        the bertbridge package itself and a ``requirements.txt``."""
        from bertbridge.core.io.artifacts import copy_files
        from bertbridge.core.io.vendor import requirements, vendor_package

        copy_files(artifact_dir, out_dir)
        code = out_dir / "code"
        code.mkdir(exist_ok=True)
        (code / "inference.py").write_text(
            '"""SageMaker inference-toolkit entry: bertbridge\'s serving functions (any backend)."""\n'
            "from bertbridge.core.serving.handlers import input_fn, model_fn, output_fn, predict_fn  # noqa: F401\n",
            encoding="utf-8",
        )
        vendor_package(code)
        (code / "requirements.txt").write_text(requirements(self), encoding="utf-8")

    def serving_environment(self) -> dict[str, str]:
        """Container environment of a SageMaker endpoint serving :meth:`package_for_serving`'s
        layout. Default: the inference toolkit runs ``code/inference.py``."""
        return {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}

    # -- availability, decided without importing the framework --------------
    def status(self) -> BackendStatus:
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        version = self.framework_version()
        if missing:
            detail = f"missing {', '.join(missing)}: pip install 'bertbridge[{self.extra}]'"
        elif not self.tasks:
            detail = "framework installed; no task implemented yet"
        else:
            detail = "ok"
        return BackendStatus(self.name, not missing, version, detail, tuple(self.tasks), architectures=tuple(self.architectures))

    def framework_version(self) -> Optional[str]:
        for dist in self.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def ensure_available(self) -> None:
        status = self.status()
        if not status.available:
            how = self.install_note() or f"Install it with: pip install 'bertbridge[{self.extra}]'"
            raise BackendUnavailableError(
                f"backend {self.name!r} needs {', '.join(self.requires)}, which is not installed in this "
                f"Python ({_python()}). {how}"
            )

    def install_note(self) -> str:
        """How to install the framework, when ``pip install 'bertbridge[<extra>]'`` is not the answer."""
        return ""

    def supports(self, task_type: str, head: Optional[str] = None) -> bool:
        """True when this backend can do ``task_type`` (listed in :attr:`tasks`, or its ``head`` is in :attr:`heads`)."""
        return task_type in self.tasks or (head is not None and head in self.heads)

    def ensure_supports(self, task_type: str, head: Optional[str] = None) -> None:
        if not self.supports(task_type, head):
            can = f"it supports: {', '.join(self.tasks)}" if self.tasks else "it implements no task yet"
            raise NotSupportedError(
                f"backend {self.name!r} cannot do {task_type!r} yet ({can}). "
                f"Choose another backend (bertbridge backends lists them) or set backend: pytorch in the spec."
            )

    def check_architecture(self, folder: Path) -> "Architecture":
        """The architecture of the model folder ``folder``; NotSupportedError naming the folder's
        ``model_type`` and listing :attr:`architectures` when this backend does not build it."""
        from bertbridge.core.io.weights import folder_architecture

        return folder_architecture(folder, tuple(self.architectures), self.name)

    # -- the framework part: override both for every task in ``tasks`` --------
    def create_model(self, pretrained_dir: Path, setup: ModelSetup) -> TrainableModel:
        """Build a classifier from a Hugging Face folder: its encoder weights plus a
        freshly initialised head (initialised from ``setup.seed``)."""
        self.ensure_supports("text_classification")
        raise NotImplementedError(f"{type(self).__name__} lists text_classification but does not implement create_model")

    def load_model(self, artifact_dir: Path, setup: ModelSetup) -> InferenceModel:
        """Open a saved artifact's ``config.json`` + ``model.safetensors``. Never unpickles."""
        self.ensure_supports("text_classification")
        raise NotImplementedError(f"{type(self).__name__} lists text_classification but does not implement load_model")

    # -- data-parallel training: override all three with ``distributed_engine`` ------
    def launched_by_engine(self, environ: Mapping[str, str]) -> bool:
        """True when ``environ`` makes this process a training worker of the engine's job
        (what ``torchrun``, ``TF_CONFIG`` or ``DMLC_ROLE=worker`` set up); training then joins
        that job, whatever the spec's ``distribution`` says."""
        return False

    def join_distributed(self, timeout: int) -> "Collective":
        """Initialise the engine in this worker from the environment and return its
        :class:`~bertbridge.core.distributed.collective.Collective`. ``timeout``: seconds to wait for peers."""
        raise NotSupportedError(f"backend {self.name!r} cannot train data-parallel.")

    def process_plan(self, cluster: "Cluster") -> "list[Proc]":
        """The processes this host of ``cluster`` starts: one ``worker`` per local rank, each
        with the environment the engine's own launcher would give it, plus any helper the
        engine needs here (MXNet's scheduler and servers)."""
        raise NotSupportedError(f"backend {self.name!r} cannot train data-parallel.")

    def sagemaker_distribution(self, processes_per_host: int) -> Any:
        """What SageMaker's ``ModelTrainer(distributed=...)`` gets for a multi-process job, or
        None when the entry point starts each instance's processes itself (from ``SM_HOSTS``)."""
        return None

    def debug_session(self, model: TrainableModel, config: Any, probe: Any, out_dir: Path) -> Any:
        """A :class:`bertbridge.core.debugger.capture.DebugSession` recording ``probe``'s attention in an
        smdebug trial at ``out_dir`` while ``model`` trains (backends with ``debugger = True``)."""
        raise NotSupportedError(f"backend {self.name!r} has no SageMaker Debugger capture.")

    def export(self, artifact_dir: Path, fmt: str, out_dir: Path, *, setup: ModelSetup, **options: Any) -> Path:
        """Write the artifact at ``artifact_dir`` in format ``fmt`` (one of :attr:`exports`)
        under ``out_dir``; returns the path of what was written. ``setup`` is the saved model's
        task's :class:`ModelSetup` (its ``head`` decides the outputs: ``logits`` for ``sequence``,
        ``start_logits`` and ``end_logits`` for ``span``)."""
        raise NotSupportedError(f"backend {self.name!r} exports no format ({fmt!r} was asked for).")

    def load_export(self, export_dir: Path, fmt: str, setup: ModelSetup) -> InferenceModel:
        """Open the ``fmt`` file of an export folder (one of :attr:`loads_exports`) for inference."""
        raise NotSupportedError(f"backend {self.name!r} opens no export format ({fmt!r} was asked for).")

    def refine_export(self, export_dir: Path, fmt: str, *, optimize: bool, quantize: Optional[str]) -> dict[str, Any]:
        """Graph-optimize and/or quantize, in place, the ``fmt`` file of an export folder being written
        (a format in :attr:`quantizes`). Returns what was done, for the export's manifest (e.g. the
        fused operators). An optimized, unquantized model must still match the plain export (the
        backend checks it); a quantized one is judged by core on validation data afterwards."""
        raise NotSupportedError(f"backend {self.name!r} cannot optimize or quantize {fmt!r} exports.")


def _python() -> str:
    import sys

    return sys.executable
