"""A trained extractive question-answering model: tokenizer + backend span model, framework-neutral.

Windows, n-best spans, the v2 null answer and the official EM/F1 are computed here
(:mod:`.features`, :mod:`.postprocess`, :mod:`.metrics`) from the
backend's start/end logits, so every backend answers the same question the same way.

Example::

    >>> import bertbridge
    >>> qa = bertbridge.load("outputs/squad")                                   # doctest: +SKIP
    >>> qa.predict({"question": "Where is the tower?", "context": "The tower is in Paris."})  # doctest: +SKIP
    [{'answer': 'Paris', 'score': 0.91, 'start': 16, 'end': 21}]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from bertbridge.core.backend import InferenceModel
from bertbridge.core.errors import DataError
from bertbridge.core.io import progress
from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.serving import protocol as serving
from bertbridge.core.tasks.qa.features import QAFeatures, build_features
from bertbridge.core.tasks.qa.metrics import evaluate as squad_evaluate
from bertbridge.core.tasks.qa.metrics import write_predictions
from bertbridge.core.tasks.qa.postprocess import Prediction, postprocess
from bertbridge.core.tasks.qa.squad import QAExample, SquadSet, examples_from_pairs, read_squad
from bertbridge.core.tasks.saving import save_model_folder
from bertbridge.core.text.batching import collate, eval_batches
from bertbridge.core.text.tokenize import TextEncoder

QAInput = Union[dict, Sequence[str]]
"""``{"question": ..., "context": ...}`` or a ``(question, context)`` pair."""


@dataclass
class QASplit:
    """A read and windowed SQuAD file (``targets``: start/end of every window, for the loss)."""

    path: str
    squad: SquadSet
    features: QAFeatures

    @property
    def targets(self) -> Optional[np.ndarray]:
        return self.features.labels


def span_loss(start: Sequence[np.ndarray], end: Sequence[np.ndarray], targets: np.ndarray) -> float:
    """Mean of the start and end cross-entropies, each window's softmax over its own tokens."""
    total = 0.0
    for s, e, (ts, te) in zip(start, end, targets):
        for logits, t in ((s, ts), (e, te)):
            x = logits.astype(np.float64)
            top = x.max()
            total += float(top + np.log(np.exp(x - top).sum()) - x[t]) / 2
    return total / max(1, len(targets))


class QuestionAnswerer:
    """Answer questions about contexts, evaluate on SQuAD files, save; what :func:`bertbridge.train`
    returns for a ``question_answering`` spec and :func:`bertbridge.load` for such a model."""

    def __init__(self, model: InferenceModel, encoder: TextEncoder, manifest: Manifest, *, batch_size: int = 64) -> None:
        self.model = model
        self.encoder = encoder
        self.manifest = manifest
        self.running_backend: Optional[str] = None  # set by bertbridge.load
        self.batch_size = batch_size
        self.path: Optional[Path] = None
        self.settings = {**_DEFAULTS, **dict(manifest.qa)}

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
        return dict(self.manifest.metrics)

    # -- features and logits ------------------------------------------------
    def features(self, examples: Sequence[QAExample], *, training: bool = False) -> QAFeatures:
        return build_features(
            examples, self.encoder, max_seq_length=self.manifest.max_seq_length, doc_stride=self.settings["doc_stride"],
            max_question_length=self.settings["max_question_length"], training=training,
        )

    def span_logits(self, features: QAFeatures, *, show_progress: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits of every window (each as long as the window), in window order."""
        start: list = [None] * len(features)
        end: list = [None] * len(features)
        bar = progress.bar(len(features), "answering", unit="window") if show_progress else None
        try:
            for index in eval_batches(features.lengths, self.batch_size):
                out = self.model.logits(collate(features, index, pad_id=self.encoder.pad_id))
                for row, i in enumerate(index):
                    n = features.lengths[i]
                    start[i], end[i] = out[row, :n, 0], out[row, :n, 1]
                if bar is not None:
                    bar.update(len(index))
        finally:
            if bar is not None:
                bar.close()
        return start, end

    def answer(self, examples: Sequence[QAExample], features: Optional[QAFeatures] = None, *,
               null_threshold: Optional[float] = None, show_progress: bool = False) -> list[Prediction]:
        """Post-processed predictions (best span, or "" for v2 models when the null answer wins)."""
        features = features if features is not None else self.features(examples)
        start, end = self.span_logits(features, show_progress=show_progress)
        return self._postprocess(examples, features, start, end, null_threshold)

    def _postprocess(self, examples, features, start, end, null_threshold=None) -> list[Prediction]:
        s = self.settings
        return postprocess(
            examples, features, start, end, n_best=s["n_best"], max_answer_length=s["max_answer_length"],
            null_threshold=s["null_threshold"] if null_threshold is None else null_threshold, v2=bool(s["v2"]),
        )

    # -- the serving contract -------------------------------------------------
    def normalize_request(self, items: list) -> list[tuple[str, str]]:
        """Request items as (question, context) pairs; :class:`serving.RequestError` (400) otherwise."""
        return serving.normalize_qa_inputs(items)

    def predict(self, inputs: Union[QAInput, Sequence[QAInput]]) -> list[dict[str, Any]]:
        """One dict per question: ``answer`` (text from the context; "" = no answer, v2 models),
        ``score`` (its probability among the n-best candidates), ``start``/``end`` (character
        offsets into the context, end exclusive; -1 for no answer)."""
        items = [inputs] if isinstance(inputs, (dict, tuple)) else list(inputs)
        if not items:
            raise DataError("nothing to predict: pass at least one {'question': ..., 'context': ...}.")
        try:
            pairs = serving.normalize_qa_inputs(items)
        except serving.RequestError as exc:
            raise DataError(exc.message) from None
        examples = examples_from_pairs([q for q, _ in pairs], [c for _, c in pairs])
        return [serving.qa_prediction(p.text, probability(p), p.start, p.end) for p in self.answer(examples)]

    # -- evaluation -------------------------------------------------------------
    def read_split(self, path: Union[str, Path], *, require_answers: bool = True) -> QASplit:
        squad = read_squad(path, require_answers=require_answers)
        return QASplit(str(path), squad, self.features(squad.examples, training=require_answers))

    def evaluate_split(self, split: QASplit, *, show_progress: bool = True,
                       predictions_out: Union[str, Path, None] = None) -> dict[str, float]:
        """The official scores (``exact``, ``f1``, ``HasAns_*``/``NoAns_*`` in percent) plus ``loss``;
        with ``predictions_out``, the official ``{id: answer}`` JSON is written there."""
        start, end = self.span_logits(split.features, show_progress=show_progress)
        predictions = self._postprocess(split.squad.examples, split.features, start, end)
        answers = {p.id: p.text for p in predictions}
        scores = squad_evaluate(split.squad.examples, answers, null_score_diff={p.id: p.null_score_diff for p in predictions}
                                if self.settings["v2"] else None)
        metrics = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        if split.targets is not None:
            metrics["loss"] = span_loss(start, end, split.targets)
        if predictions_out is not None:
            write_predictions(predictions_out, answers)
        return metrics

    def evaluate(self, path: Union[str, Path], *, predictions_out: Union[str, Path, None] = None) -> dict[str, float]:
        """Official EM/F1 on a SQuAD v1.1/v2.0 JSON file (see :meth:`evaluate_split`)."""
        return self.evaluate_split(self.read_split(path), predictions_out=predictions_out)

    # -- persistence ------------------------------------------------------------
    def save(self, directory: Union[str, Path], *, metrics: Optional[dict[str, float]] = None) -> Path:
        """Write the model folder atomically and return its path."""
        return save_model_folder(self, directory, metrics)


_DEFAULTS = {"doc_stride": 128, "max_question_length": 64, "max_answer_length": 30, "n_best": 20, "null_threshold": 0.0, "v2": False}


def probability(prediction: Prediction) -> float:
    for candidate in prediction.nbest:
        if candidate.text == prediction.text and candidate.start == prediction.start:
            return float(candidate.probability)
    return float(prediction.nbest[0].probability) if prediction.nbest else 0.0
