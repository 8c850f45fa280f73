"""Windowed model inputs for extractive question answering, with character offsets.

Each example becomes one or more windows ``[CLS] question [SEP] context-slice [SEP]``
(the tokenizer's own pair template). A context too long for one window is cut
into overlapping slices:

* ``max_seq_length`` -- tokens per window, specials included (default 384).
* ``max_question_length`` -- question tokens kept; longer questions are cut (default 64).
* ``doc_stride`` -- the OVERLAP: how many context tokens consecutive windows share
  (default 128). This is the Hugging Face ``run_qa.py`` meaning (the ``stride`` of
  the fast tokenizer's overflow), NOT Google BERT ``run_squad.py``'s meaning (the
  step between window starts). A window holds ``cap = max_seq_length -
  question_tokens - 3`` context tokens and the next window starts ``cap -
  doc_stride`` tokens later, so ``doc_stride`` must be smaller than
  ``max_seq_length - max_question_length - 3``.

Why ``encoder._tokenizer``: :class:`~bertbridge.core.text.tokenize.TextEncoder` exposes
ids only, and QA needs the offsets of the Rust ``tokenizers.Tokenizer``. Rather
than asking the tokenizer to truncate with overflow for every (question,
context) pair, each distinct context is encoded once, untruncated and without
special tokens (SQuAD has about five questions per context), each question
once, and the windows are sliced here with numpy; the tokenizer tokenizes the
two texts of a pair independently, so this gives the same tokens as encoding the
pair. Truncation and padding are switched off while encoding and the shared
tokenizer's previous settings are restored afterwards.

``offsets`` give, for every window token, the ``(start, end)`` character span in
the ORIGINAL context (end exclusive; accents, case and extra whitespace are
undone by the tokenizer's alignment), and ``(-1, -1)`` for question and special
tokens. Training labels are token positions within the window of the first
answer's first and last tokens (the token holding its first character, the token
holding its last character: an answer ending inside a word piece ends at that
piece), or 0 (``[CLS]``) when the question is unanswerable or the answer is not
entirely inside the window (Hugging Face's convention).

Example::

    >>> enc = TextEncoder.from_pretrained(folder)                                   # doctest: +SKIP
    >>> feats = build_features(squad.examples, enc, max_seq_length=384, training=True)  # doctest: +SKIP
    >>> batch = collate(feats, np.arange(8), feats.labels)   # labels: (8, 2) start/end  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from bertbridge.core.errors import SpecError
from bertbridge.core.tasks.qa.squad import QAExample
from bertbridge.core.text.tokenize import Encoded, TextEncoder

__all__ = ["QAFeatures", "build_features", "check_window_settings"]

SPECIALS_IN_PAIR = 3  # [CLS] q [SEP] c [SEP]: the fewest; build_features checks the tokenizer's own (RoBERTa: 4) before any model is built


@dataclass
class QAFeatures(Encoded):
    """Windows of question + context slice: an :class:`Encoded` (so :func:`~bertbridge.core.text.batching.collate`
    and the length-grouped batchers take it as is) plus, per window, the example it
    came from, character offsets into that example's context and the training labels."""

    example_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) int64
    offsets: list[np.ndarray] = field(default_factory=list)  # per window int32 (len, 2); (-1, -1) off context
    start_positions: Optional[np.ndarray] = None  # (N,) int64, training only
    end_positions: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.example_index = np.asarray(self.example_index, dtype=np.int64)
        sizes = {len(self.input_ids), len(self.token_type_ids), len(self.example_index), len(self.offsets)}
        sizes |= {len(x) for x in (self.start_positions, self.end_positions) if x is not None}
        if len(sizes) != 1:
            raise ValueError("QAFeatures needs one entry per window in every field (ids, segments, example_index, offsets, labels).")

    @property
    def labels(self) -> Optional[np.ndarray]:
        """``(N, 2)`` int64 start/end token positions, or None without training labels."""
        if self.start_positions is None or self.end_positions is None:
            return None
        return np.stack([self.start_positions, self.end_positions], axis=1)


def check_window_settings(max_seq_length: int, doc_stride: int, max_question_length: int, n_special: int = SPECIALS_IN_PAIR) -> None:
    """Raise :class:`SpecError` unless the settings leave every window at least one new context token."""
    for name, value, low in (
        ("training.max_seq_length", max_seq_length, 1),
        ("task.doc_stride", doc_stride, 0),
        ("task.max_question_length", max_question_length, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SpecError(f"{name} must be an integer >= {low}, got {value!r}.")
    room = max_seq_length - max_question_length - n_special
    if doc_stride >= room:
        raise SpecError(
            f"task.doc_stride ({doc_stride}) must be smaller than training.max_seq_length ({max_seq_length}) "
            f"- task.max_question_length ({max_question_length}) - {n_special} special tokens = {room}. "
            "doc_stride is the number of context tokens consecutive windows share (Hugging Face run_qa "
            "meaning), so it must leave each window some new tokens. Lower task.doc_stride or "
            "task.max_question_length, or raise training.max_seq_length."
        )


def build_features(
    examples: Sequence[QAExample],
    encoder: TextEncoder,
    *,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_question_length: int = 64,
    training: bool = False,
) -> QAFeatures:
    """Tokenize ``examples`` into windows; with ``training=True`` also label them from the first answer."""
    tokenizer = encoder._tokenizer  # the Rust tokenizer: TextEncoder has no offset API (see module docstring)
    encoder.check_max_length(max_seq_length)
    with _plain(tokenizer):
        template = _PairTemplate.of(tokenizer)
        check_window_settings(max_seq_length, doc_stride, max_question_length, template.n_special)
        context_ids: dict[str, int] = {}
        for e in examples:
            context_ids.setdefault(e.context, len(context_ids))
        contexts = list(context_ids)
        ctx_enc = tokenizer.encode_batch(contexts, add_special_tokens=False) if contexts else []
        questions = [encoder.usable_prefix(e.question, max_question_length) for e in examples]  # only the start is used
        q_enc = tokenizer.encode_batch(questions, add_special_tokens=False) if examples else []
    ctx_tokens = [np.asarray(c.ids, dtype=np.int32) for c in ctx_enc]
    ctx_offsets = [_without_spaces(text, c.tokens, _with_combining_marks(text, np.asarray(c.offsets, dtype=np.int32).reshape(-1, 2)))
                   for text, c in zip(contexts, ctx_enc)]

    input_ids: list[np.ndarray] = []
    type_ids: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    example_index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, (example, q) in enumerate(zip(examples, q_enc)):
        c = context_ids[example.context]
        ids, offs = ctx_tokens[c], ctx_offsets[c]
        head_ids, head_types = template.head(np.asarray(q.ids[:max_question_length], dtype=np.int32))
        head = len(head_ids)
        cap = max_seq_length - head - len(template.suffix_ids)
        answer_tokens = _answer_tokens(example, offs) if training else None
        for ws, we in _windows(len(ids), cap, cap - doc_stride):
            n = head + (we - ws) + len(template.suffix_ids)
            input_ids.append(np.concatenate([head_ids, ids[ws:we], template.suffix_ids]))
            type_ids.append(np.concatenate([head_types, np.full(we - ws, template.b_type, np.int32), template.suffix_types]))
            window_offsets = np.full((n, 2), -1, dtype=np.int32)
            window_offsets[head : head + we - ws] = offs[ws:we]
            offsets.append(window_offsets)
            example_index.append(i)
            if answer_tokens is not None:
                ts, te = answer_tokens
                inside = ts >= 0 and ws <= ts and te < we
                starts.append(head + ts - ws if inside else 0)
                ends.append(head + te - ws if inside else 0)
    return QAFeatures(
        input_ids,
        type_ids,
        example_index=np.asarray(example_index, dtype=np.int64),
        offsets=offsets,
        start_positions=np.asarray(starts, dtype=np.int64) if training else None,
        end_positions=np.asarray(ends, dtype=np.int64) if training else None,
    )


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _PairTemplate:
    """Special tokens and segment ids the tokenizer puts around a (question, context) pair."""

    prefix_ids: np.ndarray
    prefix_types: np.ndarray
    a_type: int
    middle_ids: np.ndarray
    middle_types: np.ndarray
    b_type: int
    suffix_ids: np.ndarray
    suffix_types: np.ndarray

    @property
    def n_special(self) -> int:
        return len(self.prefix_ids) + len(self.middle_ids) + len(self.suffix_ids)

    @classmethod
    def of(cls, tokenizer) -> "_PairTemplate":
        enc = tokenizer.encode("a", "b")  # any two texts: sequence_ids tell which tokens are special
        seq = enc.sequence_ids
        ids = np.asarray(enc.ids, dtype=np.int32)
        types = np.asarray(enc.type_ids, dtype=np.int32)
        a = [k for k, s in enumerate(seq) if s == 0]
        b = [k for k, s in enumerate(seq) if s == 1]
        if not a or not b or a[0] == 0:
            raise SpecError(
                "the model's tokenizer does not put a special token ([CLS]) before a question/context pair; "
                "extractive question answering needs a BERT-style tokenizer whose pair template starts with [CLS]."
            )
        return cls(
            ids[: a[0]], types[: a[0]], int(types[a[0]]),
            ids[a[-1] + 1 : b[0]], types[a[-1] + 1 : b[0]], int(types[b[0]]),
            ids[b[-1] + 1 :], types[b[-1] + 1 :],
        )

    def head(self, question_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids and segment ids of everything before the context slice."""
        ids = np.concatenate([self.prefix_ids, question_ids, self.middle_ids])
        types = np.concatenate([self.prefix_types, np.full(len(question_ids), self.a_type, np.int32), self.middle_types])
        return ids, types


@contextlib.contextmanager
def _plain(tokenizer) -> Iterator[None]:
    """No truncation or padding inside; the shared tokenizer's settings are put back after."""
    truncation, padding = tokenizer.truncation, tokenizer.padding
    tokenizer.no_truncation()
    tokenizer.no_padding()
    try:
        yield
    finally:
        if truncation:
            tokenizer.enable_truncation(**truncation)
        if padding:
            tokenizer.enable_padding(**padding)


def _windows(n: int, cap: int, step: int) -> Iterator[tuple[int, int]]:
    """Token ranges of the context slices (the fast tokenizer's overflow rule; one empty window for no tokens)."""
    start = 0
    while True:
        stop = min(start + cap, n)
        yield start, stop
        if stop >= n:
            return
        start += step


def _answer_tokens(example: QAExample, offsets: np.ndarray) -> tuple[int, int]:
    """Context token indices of the first answer's first and last tokens; (-1, -1) for none."""
    if example.is_impossible or not example.answers:
        return -1, -1
    answer, context = example.answers[0], example.context
    s, e = answer.start, answer.end
    while s < e and context[s].isspace():
        s += 1
    while e > s and context[e - 1].isspace():
        e -= 1
    first = int(np.searchsorted(offsets[:, 1], s, side="right"))  # first token ending after s
    last = int(np.searchsorted(offsets[:, 0], e, side="left")) - 1  # last token starting before e
    if s >= e or first >= len(offsets) or last < first:
        return -1, -1  # the answer is only characters the tokenizer drops
    return first, last


_SPACE = re.compile(r"\s")
_SPIECE_SPACE = "\u2581"  # SentencePiece's word-start mark (Metaspace's replacement for a space)


def _without_spaces(text: str, tokens: Sequence[str], offsets: np.ndarray) -> np.ndarray:
    """Start each token after the whitespace its piece stands for: SentencePiece's ``▁film``
    (XLM-R) covers `` film``, and an answer taken from the offsets must not begin with the space.
    A piece that only stands for a space (a lone ``▁``) gets an empty span, also where the
    tokenizer aligned it with the first character of the text (the space it prepends is not there)."""
    if not len(offsets):
        return offsets
    for k, token in enumerate(tokens):
        if token == _SPIECE_SPACE and text[offsets[k, 0]:offsets[k, 1]] != _SPIECE_SPACE:  # not a literal ▁ in the text
            offsets[k, 0] = offsets[k, 1] if text[offsets[k, 0]:offsets[k, 1]].isspace() else offsets[k, 0]
            offsets[k, 1] = offsets[k, 0]
    space = np.zeros(len(text) + 1, dtype=bool)
    space[[m.start() for m in _SPACE.finditer(text)]] = True
    for k in np.nonzero(space[offsets[:, 0]] & (offsets[:, 0] < offsets[:, 1]))[0]:
        start, end = int(offsets[k, 0]), int(offsets[k, 1])
        while start < end and space[start]:
            start += 1
        offsets[k, 0] = start
    return offsets


def _with_combining_marks(text: str, offsets: np.ndarray) -> np.ndarray:
    """Extend token ends over combining marks the normalizer stripped (``e\\u0301`` -> ``e``),
    so that answer text taken from the offsets keeps its accents."""
    if text.isascii() or not len(offsets):
        return offsets
    nexts = np.append(offsets[1:, 0], len(text))
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    gap = offsets[:, 1] < nexts
    after = codes[np.minimum(offsets[:, 1], len(codes) - 1)]
    for k in np.nonzero(gap & (after >= 0x300))[0]:  # no combining mark lies below U+0300
        end = int(offsets[k, 1])
        while end < nexts[k] and unicodedata.combining(text[end]):
            end += 1
        offsets[k, 1] = end
    return offsets
