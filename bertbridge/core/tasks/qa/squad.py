"""Read SQuAD-format question answering data (v1.1 and v2.0) into validated examples.

A SQuAD file is one JSON object::

    {"version": "v2.0", "data": [{"title": "...", "paragraphs": [
        {"context": "...", "qas": [{"id": "q1", "question": "...", "is_impossible": false,
                                    "answers": [{"text": "...", "answer_start": 17}]}]}]}]}

``answer_start`` is a character offset (Unicode code points, as Python indexes
strings) into ``context``. Every answer of a question is kept (dev sets have
several; the metric takes the best match), training uses the first one.

Every problem raises :class:`~bertbridge.core.errors.DataError` with one
paragraph naming the file, the question id (with article title and paragraph
index where that helps) and the fix.

Example::

    >>> squad = read_squad("dev-v2.0.json")                        # doctest: +SKIP
    >>> squad.version, squad.v2, len(squad.examples)               # doctest: +SKIP
    ('2.0', True, 11873)
    >>> examples_from_pairs(["Who wrote it?"], ["Jane wrote it."])[0].id
    '0'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from bertbridge.core.errors import DataError

__all__ = ["Answer", "QAExample", "SquadSet", "examples_from_pairs", "read_squad"]


@dataclass(frozen=True)
class Answer:
    """An answer span: its text and the character offset where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """Character offset just past the answer (exclusive)."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class QAExample:
    """One question about one context, with all its gold answers (empty when unanswerable or unknown)."""

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    is_impossible: bool
    title: str = ""


@dataclass
class SquadSet:
    """The examples of one SQuAD file, its declared version and whether it is v2-style."""

    path: Path
    version: str
    v2: bool
    examples: list[QAExample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)


def read_squad(path: Union[str, Path], *, require_answers: bool = True) -> SquadSet:
    """Read and validate a SQuAD v1.1/v2.0 JSON file.

    With ``require_answers=True`` (training and evaluation data) every question that
    is not marked ``is_impossible`` must have at least one answer. With ``False``
    (prediction input) answers may be missing; answers that are present are still checked.
    """
    path = Path(path)
    top = _load(path)
    if not isinstance(top, dict) or not isinstance(top.get("data"), list):
        found = type(top).__name__ if not isinstance(top, dict) else (
            "no 'data' key" if "data" not in top else f"'data' holding {type(top['data']).__name__}")
        raise DataError(
            f"{path}: not a SQuAD file: expected a JSON object with a 'data' list of articles, found {found}. "
            'A SQuAD file looks like {"version": "v2.0", "data": [{"title": ..., "paragraphs": '
            '[{"context": ..., "qas": [...]}]}]}.'
        )
    examples: list[QAExample] = []
    seen: dict[str, str] = {}
    any_impossible_field = False
    for a, article in enumerate(top["data"]):
        where_article = f"article {a}"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataError(
                f"{path}: {where_article} of 'data' must be an object with a 'paragraphs' list, got "
                f"{_describe(article)}. Each article is {{\"title\": ..., \"paragraphs\": [...]}}."
            )
        title = article.get("title")
        title = str(title) if title is not None else ""
        if title:
            where_article = f"article {a} ({title!r})"
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"{where_article}, paragraph {p}"
            if not isinstance(paragraph, dict):
                raise DataError(f"{path}: {where} must be an object with 'context' and 'qas', got {_describe(paragraph)}.")
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataError(
                    f"{path}: {where} has {'no' if context is None else 'a non-text'} 'context'. "
                    "Every paragraph needs a 'context' string and a 'qas' list of questions about it."
                )
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise DataError(
                    f"{path}: {where} has {'no' if qas is None else 'a non-list'} 'qas'. Every paragraph needs "
                    "a 'qas' list of questions (use [] for a paragraph without questions)."
                )
            for q, qa in enumerate(qas):
                example = _example(path, where, q, qa, context, title, require_answers)
                if example.id in seen:
                    raise DataError(
                        f"{path}: question id {example.id!r} ({where}, question {q}) was already used by "
                        f"{seen[example.id]}. Question ids must be unique: predictions are keyed by id. "
                        "Give one of them a new id."
                    )
                seen[example.id] = f"{where}, question {q}"
                any_impossible_field = any_impossible_field or "is_impossible" in qa
                examples.append(example)
    if not examples:
        raise DataError(f"{path}: holds no questions. Check that the paragraphs have non-empty 'qas' lists.")
    version = _version(top.get("version"), any_impossible_field)
    return SquadSet(path, version, any_impossible_field or version.startswith("2"), examples)


def examples_from_pairs(
    questions: Sequence[str], contexts: Sequence[str], ids: Optional[Sequence[str]] = None
) -> list[QAExample]:
    """Unlabelled examples from parallel question and context lists (serving, ``predict``).

    Ids default to the position (``"0"``, ``"1"``, ...). Errors name the position.
    """
    if isinstance(questions, str) or isinstance(contexts, str):
        raise DataError("questions and contexts must be lists of strings, not single strings; wrap a single one in a list.")
    questions, contexts = list(questions), list(contexts)
    if len(questions) != len(contexts):
        raise DataError(
            f"got {len(questions)} question(s) but {len(contexts)} context(s); give one context per question "
            "(repeat a context for several questions about it)."
        )
    ids = [str(i) for i in range(len(questions))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(questions):
        raise DataError(f"got {len(ids)} id(s) for {len(questions)} question(s); give one id per question or none.")
    examples, seen = [], {}
    for i, (qid, question, context) in enumerate(zip(ids, questions, contexts)):
        for name, value in (("question", question), ("context", context)):
            if not isinstance(value, str):
                raise DataError(f"{name} {i} must be a string, got {type(value).__name__}.")
            if not value.strip():
                raise DataError(f"{name} {i} is empty. Give a non-empty {name} or remove item {i}.")
        if qid in seen:
            raise DataError(f"id {qid!r} of item {i} was already used by item {seen[qid]}; ids must be unique.")
        seen[qid] = i
        examples.append(QAExample(qid, question, context, (), False))
    return examples


# ---------------------------------------------------------------------------


def _load(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the data path (relative paths are relative to the spec file).") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give the SQuAD .json file itself.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: bytes that are not valid UTF-8 (byte offset {exc.start}: "
            f"{raw[exc.start:exc.start + 4]!r}). JSON files must be UTF-8; re-save the file as UTF-8."
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}, line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg}). "
            "Fix the JSON at that position (a SQuAD file is a single JSON object, not JSON lines)."
        ) from None


def _example(path: Path, where: str, q: int, qa: Any, context: str, title: str, require_answers: bool) -> QAExample:
    if not isinstance(qa, dict):
        raise DataError(f"{path}: {where}, question {q} must be an object with 'id', 'question' and 'answers', got {_describe(qa)}.")
    qid = qa.get("id")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not str(qid).strip():
        raise DataError(
            f"{path}: {where}, question {q} has {'no' if qid is None else 'an unusable'} 'id' ({qid!r}). "
            "Every question needs a unique string id; predictions are keyed by it."
        )
    qid = str(qid)
    at = f"{path}: question {qid!r} ({where})"
    question = qa.get("question")
    if not isinstance(question, str):
        raise DataError(f"{at} has {'no' if question is None else 'a non-text'} 'question'. Add the question text.")
    if not question.strip():
        raise DataError(f"{at}: the question text is empty. Fill it in or remove the question.")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise DataError(f"{at}: 'is_impossible' must be true or false, got {impossible!r}.")
    raw_answers = qa.get("answers", [])
    if raw_answers is None:
        raw_answers = []
    if not isinstance(raw_answers, list):
        raise DataError(f"{at}: 'answers' must be a list of {{\"text\", \"answer_start\"}} objects, got {_describe(raw_answers)}.")
    if impossible and raw_answers:
        raise DataError(
            f"{at} is marked is_impossible but has {len(raw_answers)} answer(s). An unanswerable question has "
            "'answers': [] (SQuAD v2 keeps decoys in 'plausible_answers'); set is_impossible to false or empty the list."
        )
    answers = tuple(_answer(at, k, item, context) for k, item in enumerate(raw_answers))
    if require_answers and not impossible and not answers:
        raise DataError(
            f"{at} has no answers and is not marked is_impossible. Training and evaluation data need at "
            "least one answer per question; add one, or set \"is_impossible\": true for an unanswerable "
            "question (SQuAD v2)."
        )
    return QAExample(qid, question, context, answers, impossible, title)


def _answer(at: str, k: int, item: Any, context: str) -> Answer:
    if not isinstance(item, dict):
        raise DataError(f"{at}: answer {k} must be an object {{\"text\": ..., \"answer_start\": ...}}, got {_describe(item)}.")
    text, start = item.get("text"), item.get("answer_start")
    if not isinstance(text, str) or not text:
        raise DataError(f"{at}: answer {k} has {'no' if text is None else 'an empty or non-text'} 'text'. Give the answer text as it appears in the context.")
    if isinstance(start, bool) or not isinstance(start, int):
        raise DataError(
            f"{at}: answer {k} ({text!r}) has 'answer_start' {start!r}; it must be an integer character offset "
            f"into the context{_suggest(context, text, None)}"
        )
    if start < 0 or start + len(text) > len(context):
        raise DataError(
            f"{at}: answer {k} ({text!r}) has answer_start {start}, outside the context of {len(context)} "
            f"characters{_suggest(context, text, start)}"
        )
    found = context[start : start + len(text)]
    if found != text:
        raise DataError(
            f"{at}: answer {k} is {text!r} but the context has {found!r} at answer_start {start}"
            f"{_suggest(context, text, start)}"
        )
    return Answer(text, start)


def _suggest(context: str, text: str, start: Optional[int]) -> str:
    offsets, i = [], context.find(text)
    while i != -1:
        offsets.append(i)
        i = context.find(text, i + 1)
    if not offsets:
        return (
            ". The answer text does not occur in the context at all; copy it from the context exactly "
            "(answer_start counts characters, not bytes)."
        )
    best = min(offsets, key=lambda o: abs(o - start)) if start is not None else offsets[0]
    return (
        f". The text occurs at offset {best}" + (f" (of {len(offsets)} occurrences)" if len(offsets) > 1 else "")
        + f"; set answer_start to {best} (it counts characters, not bytes)."
    )


def _version(declared: Any, impossible_field: bool) -> str:
    if declared is None or not str(declared).strip():
        return "2.0" if impossible_field else "1.1"
    version = str(declared).strip()
    return version[1:] if version[:1] in ("v", "V") else version


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__
