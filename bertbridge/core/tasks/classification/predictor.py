"""A trained text classifier: tokenizer + backend model + labels, framework-neutral.

Probabilities are computed here from the backend's logits (softmax for
single-label, sigmoid for multi-label), so every backend answers the same
request with the same response shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from bertbridge.core.backend import InferenceModel
from bertbridge.core.data.labels import LabelMap
from bertbridge.core.errors import DataError
from bertbridge.core.io import progress
from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.serving import protocol as serving
from bertbridge.core.spec import DataConfig
from bertbridge.core.tasks.classification import windows
from bertbridge.core.tasks.classification.data import Split, read_split
from bertbridge.core.tasks.classification.metrics import classification_metrics, multilabel_metrics
from bertbridge.core.tasks.saving import save_model_folder
from bertbridge.core.text.batching import collate, eval_batches
from bertbridge.core.text.tokenize import Encoded, TextEncoder

DATA_KEYS = ("format", "header", "text_column", "text_pair_column", "label_column", "label_separator", "encoding")
"""The ``data`` fields saved in the manifest: how new files are read by default."""
TextInput = Union[str, Sequence[str]]
"""A text, or a (text, text_pair) pair for sentence-pair tasks."""


def mean_loss(logits: np.ndarray, targets: np.ndarray, multi_label: bool) -> float:
    """Cross-entropy (single-label) or binary cross-entropy (multi-label), as the backends train on."""
    logits = logits.astype(np.float64)
    if multi_label:
        # log(1 + exp(-|x|)) + max(x, 0) - x*y, the stable form
        loss = np.logaddexp(0.0, -np.abs(logits)) + np.maximum(logits, 0) - logits * targets
        return float(loss.mean())
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


class TextClassifier:
    """Predict, evaluate and save; what :func:`bertbridge.train` and :func:`bertbridge.load` return.

    Example::

        >>> import bertbridge
        >>> clf = bertbridge.load("outputs/sentiment")                 # doctest: +SKIP
        >>> clf.predict(["What a wonderful film."])[0]["label"]      # doctest: +SKIP
        'positive'
    """

    def __init__(
        self,
        model: InferenceModel,
        encoder: TextEncoder,
        manifest: Manifest,
        *,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.manifest = manifest
        self.running_backend: Optional[str] = None  # set by bertbridge.load
        self.label_map = LabelMap(manifest.labels)
        self.batch_size = batch_size
        self.path: Optional[Path] = None

    # -- properties -----------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def multi_label(self) -> bool:
        return self.manifest.multi_label

    @property
    def backend(self) -> str:
        """The backend running this model: the one :func:`bertbridge.load` chose, else the trainer's."""
        return self.running_backend or self.manifest.backend

    @property
    def trained_backend(self) -> str:
        """The backend that trained this model (recorded in ``bertbridge.json``)."""
        return self.manifest.backend

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics recorded at training time (validation, then test with a ``test_`` prefix)."""
        return dict(self.manifest.metrics)

    # -- inference ------------------------------------------------------
    def encode(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None) -> Encoded:
        """One sequence per input, cut at ``max_seq_length`` (see :meth:`text_logits` for long texts)."""
        self._check_pairs(pairs)
        return self.encoder.encode(texts, pairs, max_length=self.manifest.max_seq_length)

    def _check_pairs(self, pairs: Optional[Sequence[str]]) -> None:
        if self.manifest.text_pair and pairs is None:
            raise DataError("this model was trained on sentence pairs: give (text, text_pair) pairs, not single texts.")
        if not self.manifest.text_pair and pairs is not None:
            raise DataError("this model was trained on single texts: give strings, not (text, text_pair) pairs.")

    def logits(self, features: Encoded, *, show_progress: bool = False) -> np.ndarray:
        """Logits (N, K) in input order; batches are length-sorted internally."""
        out = np.zeros((len(features), len(self.labels)), dtype=np.float32)
        batches = eval_batches(features.lengths, self.batch_size)
        bar = progress.bar(len(features), "predicting", unit="ex") if show_progress else None
        try:
            for index in batches:
                out[index] = self.model.logits(collate(features, index, pad_id=self.encoder.pad_id))
                if bar is not None:
                    bar.update(len(index))
        finally:
            if bar is not None:
                bar.close()
        return out

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return serving.probabilities(logits, self.multi_label)

    def text_logits(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None, *,
                    show_progress: bool = False) -> np.ndarray:
        """Logits (N, K) of whole texts: with ``long_text``, each text's windows combined."""
        if not self.manifest.long_text:
            return self.logits(self.encode(texts, pairs), show_progress=show_progress)
        self._check_pairs(pairs)
        features, doc_index = windows.encode(self.encoder, texts, self.manifest.long_text, self.manifest.max_seq_length)
        return self._combined(self.logits(features, show_progress=show_progress), doc_index, len(texts))

    def _combined(self, window_logits: np.ndarray, doc_index: np.ndarray, documents: int) -> np.ndarray:
        return windows.aggregate(window_logits, doc_index, documents, self.manifest.long_text["aggregate"])

    def predict_proba(self, inputs: Union[TextInput, Sequence[TextInput]]) -> np.ndarray:
        """Probabilities (N, K), columns in :attr:`labels` order."""
        texts, pairs = _split_inputs(inputs, self.manifest.text_pair)
        return self.probabilities(self.text_logits(texts, pairs, show_progress=len(texts) > 2 * self.batch_size))

    def predict(self, inputs: Union[TextInput, Sequence[TextInput]]) -> list[dict[str, Any]]:
        """One dict per input: ``label`` and ``score`` (single-label) or ``labels`` (multi-label,
        those at or above the threshold), plus ``probabilities`` for every label."""
        probs = self.predict_proba(inputs)
        return [self._result(row) for row in probs]

    def _result(self, row: np.ndarray) -> dict[str, Any]:
        return serving.prediction(row, self.labels, self.multi_label, self.manifest.threshold)

    # -- evaluation -----------------------------------------------------
    def read_split(self, path: Union[str, Path], data: Optional[DataConfig] = None, *, require_labels: bool = True) -> Split:
        """Read and tokenize a data file with ``data`` (default: how the training data was read)."""
        cfg = data or self.data_config()
        return read_split(
            path, cfg, self.encoder, self.label_map,
            max_length=self.manifest.max_seq_length, multi_label=self.multi_label, require_labels=require_labels,
            long_text=self.manifest.long_text,
        )

    def data_config(self) -> DataConfig:
        """How the training data was read (columns, header, ...): the default for new files."""
        return DataConfig(**_data_kwargs(self.manifest.data))

    def evaluate_split(self, split: Split, *, show_progress: bool = True) -> dict[str, float]:
        if split.targets is None:
            raise DataError(f"{split.path}: has no labels to evaluate against.")
        logits = self.logits(split.features, show_progress=show_progress)
        if split.doc_index is not None:  # long_text: the metrics are per text
            logits = self._combined(logits, split.doc_index, len(split.targets))
        probs = self.probabilities(logits)
        if self.multi_label:
            metrics = multilabel_metrics(split.targets, probs, self.labels, threshold=self.manifest.threshold)
        else:
            metrics = classification_metrics(split.targets, probs.argmax(axis=1), self.labels)
        metrics["loss"] = mean_loss(logits, split.targets, self.multi_label)
        return metrics

    def evaluate(self, path: Union[str, Path], data: Optional[DataConfig] = None) -> dict[str, float]:
        """Metrics on a labelled file (accuracy, F1s, MCC, per-class P/R/F1, loss)."""
        return self.evaluate_split(self.read_split(path, data))

    # -- persistence ----------------------------------------------------
    def save(self, directory: Union[str, Path], *, metrics: Optional[dict[str, float]] = None) -> Path:
        """Write the model folder atomically and return its path."""
        return save_model_folder(self, directory, metrics)

    def normalize_request(self, items: list) -> list:
        """Request items as texts or (text, text_pair) tuples; :class:`serving.RequestError` otherwise."""
        return serving.normalize_inputs(items, self.manifest.text_pair)


def _data_kwargs(saved: dict) -> dict:
    return {k: saved[k] for k in DATA_KEYS if k in saved}


def _split_inputs(inputs: Any, text_pair: bool) -> tuple[list[str], Optional[list[str]]]:
    """Python-API inputs -> texts (and pairs), by the same rules as a serving request."""
    items = [inputs] if isinstance(inputs, (str, tuple)) else list(inputs)
    if not items:
        raise DataError("nothing to predict: pass at least one text.")
    try:
        normalized = serving.normalize_inputs(items, text_pair)
    except serving.RequestError as exc:
        raise DataError(exc.message) from None
    if not text_pair:
        return list(normalized), None  # type: ignore[arg-type]
    return [p[0] for p in normalized], [p[1] for p in normalized]
