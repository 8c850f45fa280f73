"""``question_answering``: what differs from other tasks (see :class:`bertbridge.core.task.Task`).

Data: SQuAD v1.1/v2.0 JSON. Each training window is one example (a long context gives
several), labelled with the answer's start and end token, or [CLS] when the answer is not
inside it (or the question has none). Head: ``span``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np

from bertbridge.core.backend import ModelSetup
from bertbridge.core.data.readers import decoded_lines
from bertbridge.core.data.streaming import predict_lines, skip_done
from bertbridge.core.errors import DataError
from bertbridge.core.io.artifacts import Manifest
from bertbridge.core.serving.protocol import RequestError, normalize_qa_inputs, qa_prediction
from bertbridge.core.spec import TaskSpec
from bertbridge.core.task import Task, TaskData
from bertbridge.core.tasks.qa.features import check_window_settings
from bertbridge.core.tasks.qa.predictor import QuestionAnswerer, probability
from bertbridge.core.tasks.qa.squad import read_squad
from bertbridge.core.text.tokenize import TextEncoder

MONITORS = ("f1", "exact", "HasAns_f1", "loss")
SPAN_LABELS = {0: "start", 1: "end"}


class QuestionAnsweringTask(Task):
    name = "question_answering"
    summary = "extractive answers to questions about a context; SQuAD v1.1/v2.0 JSON data"
    pipeline_tag = "question-answering"
    train_hint = "a SQuAD-format JSON file (v1.1 or v2.0)"
    head = "span"
    exportable = True  # ONNX / TorchScript / SavedModel / MXNet symbol outputs: start_logits, end_logits

    def monitors(self, spec: TaskSpec) -> tuple[str, ...]:
        return MONITORS

    def probe_inputs(self, manifest: Manifest) -> list[tuple[str, Optional[str]]]:
        return [("Who wrote it?", "It was written by Ada Lovelace in 1843."), ("When?", "The bridge opened in 1932.")]

    def card_example(self, manifest: Manifest) -> Any:
        return {"question": "Who wrote it?", "context": "It was written by Ada Lovelace in 1843."}

    def quality_metric(self, manifest: Manifest) -> tuple[str, float]:
        return "f1", 1.0  # the official SQuAD F1, in points already

    def check_spec(self, spec: TaskSpec) -> None:
        super().check_spec(spec)
        check_window_settings(spec.training.max_seq_length, spec.task.doc_stride, spec.task.max_question_length)

    # -- training data ---------------------------------------------------------------
    def read_data(self, spec: TaskSpec, encoder: TextEncoder, backend: str) -> TaskData:
        """Every split read and windowed before the model is built, so a bad question fails in seconds."""
        task = spec.task
        settings = {"doc_stride": task.doc_stride, "max_question_length": task.max_question_length,
                    "max_answer_length": task.max_answer_length, "n_best": task.n_best,
                    "null_threshold": task.null_threshold, "v2": False}
        manifest = Manifest(task=self.name, labels=(), backend=backend, max_seq_length=spec.training.max_seq_length,
                            lowercase=encoder.lowercase, base_model=spec.model.name, data={"format": "squad"}, qa=settings)
        reader = QuestionAnswerer(None, encoder, manifest, batch_size=spec.training.eval_batch_size)  # type: ignore[arg-type]
        train, validation, test = (reader.read_split(p) if p else None
                                   for p in (spec.data.train, spec.data.validation, spec.data.test))
        v2 = any(s.squad.v2 for s in (train, validation, test) if s is not None)
        manifest = Manifest(**{**manifest.__dict__, "qa": {**settings, "v2": v2}})
        return TaskData(manifest, self.model_setup(manifest), train, validation, test,
                        metrics={"train_windows": float(len(train.features))})

    # -- saved models ------------------------------------------------------------------
    def model_setup(self, manifest: Manifest) -> ModelSetup:
        return ModelSetup(num_labels=2, multi_label=False, id2label=SPAN_LABELS, seed=0, head=self.head)

    def predictor(self, model, encoder: TextEncoder, manifest: Manifest, *, batch_size: int) -> QuestionAnswerer:
        return QuestionAnswerer(model, encoder, manifest, batch_size=batch_size)

    # -- command line ------------------------------------------------------------------
    def cli_evaluate(self, predictor: QuestionAnswerer, data: str, predictions_out: Optional[str]) -> dict[str, float]:
        return predictor.evaluate(data, predictions_out=predictions_out)

    def explain_target(self, manifest: Manifest, logits: np.ndarray, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, str]:
        """The window's best span in the context (start before end, at most ``max_answer_length``
        tokens): its start logit plus its end logit."""
        start, end = best_window_span(logits[0], np.asarray(batch["sequence_ids"][0]) == 1, int(manifest.qa.get("max_answer_length", 30)))
        weights = np.zeros_like(logits, dtype=np.float32)
        weights[0, start, 0] = weights[0, end, 1] = 1.0
        return weights, f"answer span tokens {start}-{end}"

    def cli_single_input(self, args: Any) -> tuple[str, Optional[str]]:
        """One ``--question`` and its ``--context``: the model's first window of them."""
        if args.text or args.text_pair or len(args.question or []) != 1 or len(args.context or []) != 1:
            raise DataError(f"this model answers questions: bertbridge {args.command} runs it on one --question Q and one --context C.")
        return args.question[0], args.context[0]

    resumable_predict = True

    def cli_predict(self, predictor: QuestionAnswerer, args: Any) -> Iterable[dict[str, Any]]:
        """Rows for ``--question/--context``, a jsonl of ``{question, context}``, or a SQuAD file (by id)."""
        if args.text or args.text_pair:
            raise DataError("this model answers questions: use --question Q --context C (or --input squad.json).")
        if args.question:
            if not args.context or len(args.context) != len(args.question):
                raise DataError(f"got {len(args.question)} --question but {len(args.context or [])} --context; "
                                "give one --context per --question.")
            pairs = list(zip(args.question, args.context))
            return [{"question": q, **r} for (q, _), r in zip(pairs, predictor.predict(pairs))]
        skip, last = getattr(args, "skip", 0), getattr(args, "last_row", None)
        if str(args.input).lower().endswith(".jsonl"):
            return _answered_lines(predictor, Path(args.input), args)
        squad = read_squad(args.input, require_answers=False)  # one JSON document: read and answered whole
        examples = list(skip_done(squad.examples, skip, last, ("id", lambda e: e.id), Path(args.output or "")))
        predictions = predictor.answer(examples, show_progress=len(examples) > 100) if examples else []
        return [{"id": p.id, **qa_prediction(p.text, probability(p), p.start, p.end)} for p in predictions]


def _answered_lines(predictor: QuestionAnswerer, path: Path, args: Any) -> Iterator[dict[str, Any]]:
    """One row per ``{question, context}`` line of a jsonl file, answered as the file is read."""
    return predict_lines(_jsonl_items(path), predictor.predict, path, args, unit="question",
                         empty='no questions found; give one {"question": ..., "context": ...} object per line.')


def _jsonl_items(path: Path) -> Iterator[tuple[int, tuple[str, str]]]:
    """``(line number, (question, context))`` of each non-blank line; a bad line is a DataError naming it."""
    for n, line in enumerate(decoded_lines(path, "utf-8", split_cr=False), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {n}: invalid JSON ({exc.msg}); one {{question, context}} object per line.") from None
        try:
            (pair,) = normalize_qa_inputs([item])
        except RequestError as exc:
            raise DataError(f"{path}, line {n}: {exc.message.removeprefix('input 0: ')}") from None
        yield n, pair


def best_window_span(logits: np.ndarray, context: np.ndarray, max_length: int) -> tuple[int, int]:
    """(start, end) maximising start + end logits over the context tokens (``context``: (T,) bool, the
    second text's tokens, from the tokenizer's sequence ids) of one window (T, 2)."""
    idx = np.flatnonzero(context)
    if not len(idx):
        raise DataError("the window holds no context tokens (an empty context, or a question that fills the window): "
                        "give a non-empty --context, or a shorter --question.")
    scores = logits[idx, 0][:, None] + logits[idx, 1][None, :]
    allowed = (idx[None, :] >= idx[:, None]) & (idx[None, :] - idx[:, None] < max_length)
    i, j = np.unravel_index(np.argmax(np.where(allowed, scores, -np.inf)), scores.shape)
    return int(idx[i]), int(idx[j])
