"""Tokenization to numpy with the model's own fast (Rust) tokenizer.

Core uses the ``tokenizers`` library directly rather than ``transformers``
(whose ``AutoTokenizer`` imports torch when it is installed): it loads the
folder's ``tokenizer.json``, or builds the identical WordPiece tokenizer from
``vocab.txt`` and ``tokenizer_config.json`` for folders that have no
``tokenizer.json``. Sequences are kept unpadded; :mod:`.batching` pads each
batch only to its own longest sequence.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from bertbridge.core.errors import BertbridgeError, ModelNotFoundError, SpecError
from bertbridge.core.io.architectures import ARCHITECTURES
from bertbridge.core.io.jsonfiles import read_json_object

_WHITESPACE = re.compile(r"\s")


def _last_space(text: str, start: int, end: int):
    """The index of the last whitespace character in ``text[start:end]`` (after ``start``), or None."""
    for i in range(end - 1, start, -1):
        if text[i].isspace():
            return i
    return None
PREFIX_CHARS_PER_TOKEN = 16
"""Characters of a long text tokenized first per usable token (more when they hold too few tokens)."""
PAIR_PREFIX_FACTOR = 4
"""Pairs keep this many times ``max_length`` tokens of each text: 'longest_first' truncation
depends on which text is longer, which a cut at ``max_length`` would hide."""
PREFIX_MAX_CHARS_PER_TOKEN = 64
"""Characters per usable token past which a text without whitespace is cut anyway."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass
class Encoded:
    """Unpadded token ids of N sequences (int32 arrays) and their lengths."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    sequence_ids: Optional[list[np.ndarray]] = None
    """For pairs: which text each token comes from (0, 1; -1 for special tokens). Token types cannot
    tell (RoBERTa gives both texts type 0)."""
    truncated: int = 0
    """How many of the inputs were cut to ``max_length`` (tokens were dropped)."""

    def __post_init__(self) -> None:
        self.lengths = np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)


class TextEncoder:
    """The fast tokenizer of a model folder, producing :class:`Encoded` features.

    Example::

        >>> enc = TextEncoder.from_pretrained(folder)                 # doctest: +SKIP
        >>> enc.encode(["A fine film."], max_length=16).input_ids[0]  # doctest: +SKIP
        array([ 101, 1037, 2986, 2143, 1012,  102], dtype=int32)
    """

    def __init__(self, tokenizer, folder: Path, lowercase: bool, model_max_length: int, pad_id: int) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.RLock()  # encode and usable_prefix switch the tokenizer's truncation: one at a time
        self.folder = folder
        self.lowercase = lowercase
        self.model_max_length = model_max_length
        self.pad_id = pad_id

    @classmethod
    def from_pretrained(cls, folder: Path) -> "TextEncoder":
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _read_json(folder / "tokenizer_config.json")
        model_config = _read_json(folder / "config.json")
        if (folder / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.txt").is_file():
            from tokenizers.implementations import BertWordPieceTokenizer
            from tokenizers.models import WordPiece

            tokenizer = BertWordPieceTokenizer(
                WordPiece.read_file(str(folder / "vocab.txt")),
                lowercase=bool(config.get("do_lower_case", True)),
                strip_accents=config.get("strip_accents"),
                handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
            )._tokenizer
        else:
            raise ModelNotFoundError(
                f"{folder}: no tokenizer.json or vocab.txt. A model folder needs its tokenizer files; "
                "copy them from the model you started from."
            )
        tokenizer.no_padding()
        tokenizer.no_truncation()
        lowercase = config.get("do_lower_case")
        if lowercase is None:
            lowercase = _normalizer_lowercases(tokenizer)
        limits = [v for v in (_positions(model_config), config.get("model_max_length")) if isinstance(v, int)]
        return cls(tokenizer, folder, bool(lowercase), min(limits) if limits else 512, _pad_id(folder, tokenizer, config, model_config))

    def check_max_length(self, max_length: int) -> None:
        if max_length > self.model_max_length:
            raise SpecError(
                f"training.max_seq_length is {max_length}, but the model at {self.folder} handles at most "
                f"{self.model_max_length} tokens. Set training.max_seq_length to {self.model_max_length} or less."
            )

    def encode(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None, *, max_length: int,
               sequence_ids: bool = False) -> Encoded:
        """Tokenize with [CLS]/[SEP] and truncation ('longest_first' for pairs) to ``max_length``;
        ``sequence_ids=True`` also keeps which text each token of a pair comes from.

        A text far longer than ``max_length`` tokens is cut first (see :meth:`usable_prefix`), so
        a multi-megabyte input costs what its usable start costs. The result is the same as
        tokenizing it whole, with one exception: when *both* texts of a pair exceed
        ``PAIR_PREFIX_FACTOR * max_length`` tokens, which of them gets the odd token of an odd
        budget can differ (the tokenizer gives it to the longer one, and both are cut)."""
        with self._lock:
            return self._encode(texts, pairs, max_length, sequence_ids)

    def _encode(self, texts: Sequence[str], pairs: Optional[Sequence[str]], max_length: int, sequence_ids: bool) -> Encoded:
        self.check_max_length(max_length)
        keep = max_length if pairs is None else PAIR_PREFIX_FACTOR * max_length
        texts = [self.usable_prefix(t, keep) for t in texts]
        pairs = [self.usable_prefix(t, keep) for t in pairs] if pairs is not None else None
        self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
        encodings = self._tokenizer.encode_batch(inputs)
        return Encoded(
            [np.asarray(e.ids, dtype=np.int32) for e in encodings],
            [np.asarray(e.type_ids, dtype=np.int32) for e in encodings],
            [np.array([-1 if s is None else s for s in e.sequence_ids], dtype=np.int32) for e in encodings]
            if sequence_ids and pairs is not None else None,
            truncated=sum(1 for e in encodings if e.overflowing),
        )

    def encode_windows(self, texts: Sequence[str], *, max_length: int, stride: int,
                       max_windows: int) -> tuple[Encoded, np.ndarray]:
        """Each text as overlapping windows of at most ``max_length`` tokens ([CLS]/[SEP] in each),
        consecutive windows sharing ``stride`` tokens, at most ``max_windows`` per text. Returns the
        windows, in text order (``truncated``: how many texts had more than ``max_windows``), and the
        index of the text each window comes from."""
        with self._lock:
            return self._encode_windows(texts, max_length, stride, max_windows)

    def _encode_windows(self, texts: Sequence[str], max_length: int, stride: int, max_windows: int) -> tuple[Encoded, np.ndarray]:
        self.check_max_length(max_length)
        content = max_length - self.num_special_tokens
        if not 0 <= stride < content:
            raise SpecError(f"task.long_text.stride is {stride}, but a window of {max_length} tokens holds {content} "
                            f"of the text; set a stride below {content} (a quarter of it is usual).")
        keep = content + (content - stride) * (max_windows - 1)
        texts = [self.usable_prefix(t, keep) for t in texts]
        self._tokenizer.enable_truncation(max_length=max_length, stride=stride, strategy="longest_first")
        try:
            encodings = self._tokenizer.encode_batch(list(texts))
        finally:
            self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        windows = [(doc, w) for doc, e in enumerate(encodings) for w in ([e, *e.overflowing])[:max_windows]]
        features = Encoded([np.asarray(w.ids, dtype=np.int32) for _, w in windows],
                           [np.asarray(w.type_ids, dtype=np.int32) for _, w in windows],
                           truncated=sum(1 for e in encodings if len(e.overflowing) >= max_windows))
        return features, np.fromiter((doc for doc, _ in windows), dtype=np.int64, count=len(windows))

    @property
    def num_special_tokens(self) -> int:
        """Tokens the template adds to a single text ([CLS] and [SEP]: 2)."""
        return len(self._tokenizer.encode("").ids)

    def usable_prefix(self, text: str, max_tokens: int) -> str:
        """``text`` cut at the first whitespace after its first ``max_tokens + 1`` tokens
        (``text`` itself when it holds fewer).

        Pre-tokenizers split at whitespace, so the text is tokenized in pieces that end at
        whitespace, only until the count passes ``max_tokens``: the prefix starts with the same
        tokens as the whole text, however sparse the text (long unknown words, runs of spaces).
        Cutting matters: a truncating tokenizer still tokenizes everything and keeps every
        overflowing chunk (for pairs, every combination of the two sides' chunks), so an uncut
        multi-megabyte text costs seconds and gigabytes. The one inexact case: a run of more
        than ``PREFIX_MAX_CHARS_PER_TOKEN * max_tokens`` characters without whitespace is cut
        inside (BERT reads any word over 100 characters as one [UNK] anyway)."""
        piece = PREFIX_CHARS_PER_TOKEN * max_tokens
        if len(text) <= piece:
            return text
        with self._lock:
            truncation = self._tokenizer.truncation
            self._tokenizer.no_truncation()
            try:
                return self._prefix_past(text, max_tokens, piece)
            finally:
                if truncation:
                    self._tokenizer.enable_truncation(**truncation)

    def _prefix_past(self, text: str, max_tokens: int, piece: int) -> str:
        counted, start = 0, 0
        while len(text) - start > piece:
            end = _last_space(text, start, start + piece)
            if end is None:  # no whitespace in this stretch: look further, up to a limit
                if piece >= PREFIX_MAX_CHARS_PER_TOKEN * max_tokens:
                    return text[: start + piece]
                piece *= 4
                continue
            offsets = self._tokenizer.encode(text[start:end], add_special_tokens=False).offsets
            if counted + len(offsets) > max_tokens:
                space = _WHITESPACE.search(text, start + offsets[max_tokens - counted][1])
                return text[: space.start()] if space else text
            counted, start = counted + len(offsets), end
        return text

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    @property
    def fingerprint(self) -> str:
        """Identifies the vocabulary and casing (stored with TFRecord exports)."""
        return tokenizer_fingerprint(self._tokenizer.get_vocab(), self.lowercase)

    def template_ids(self) -> set[int]:
        """The ids the tokenizer's template adds around texts (``[CLS]``, ``[SEP]``), not word pieces."""
        return set(self._tokenizer.encode("", "").ids)

    def tokens(self, text: str) -> list[str]:
        """The word pieces of ``text`` (for display and debugging)."""
        return self._tokenizer.encode(text).tokens

    def id_tokens(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary entries of token ids (``[CLS]``, word pieces, ``[SEP]``)."""
        return [self._tokenizer.id_to_token(int(i)) or "[UNK]" for i in ids]

    def save(self, directory: Path) -> None:
        """Copy the tokenizer files into ``directory``; write tokenizer.json if the source had none."""
        for name in TOKENIZER_FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, directory / name)
        if not (directory / "tokenizer.json").exists():
            self._tokenizer.save(str(directory / "tokenizer.json"))


def _read_json(path: Path) -> dict:
    return read_json_object(path, ModelNotFoundError, "the model folder is damaged.")


def _read_optional_json(path: Path) -> dict:
    """A file bertbridge only consults (a damaged one is as good as none)."""
    try:
        return _read_json(path)
    except ModelNotFoundError:
        return {}


def _pad_id(folder: Path, tokenizer, config: dict, model_config: dict) -> int:
    """The padding id: ``tokenizer_config.json``'s or ``special_tokens_map.json``'s ``pad_token``, else
    ``config.json``'s ``pad_token_id``, else ``[PAD]`` or ``<pad>`` in the vocabulary, else 0. (Hub
    RoBERTa folders can lack the first two, and their vocabulary has no ``[PAD]``: padding with id 0,
    ``<s>``, would feed sentence starts where the model expects padding.)"""
    for source in (config, _read_optional_json(folder / "special_tokens_map.json")):
        token = source.get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return tokenizer.token_to_id(token)
    if isinstance(model_config.get("pad_token_id"), int):
        return model_config["pad_token_id"]
    for token in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(token) is not None:
            return tokenizer.token_to_id(token)
    return 0


def _positions(model_config: dict):
    """How many tokens the model's position table numbers: ``max_position_embeddings``, less the rows
    RoBERTa-style numbering skips (it starts at ``pad_token_id + 1``)."""
    table = model_config.get("max_position_embeddings")
    arch = ARCHITECTURES.get(model_config.get("model_type"))
    if not isinstance(table, int) or arch is None or not arch.positions_from_padding:
        return table
    try:
        return table - arch.encoder_config(model_config)["position_offset"]
    except BertbridgeError:  # a bad pad_token_id: loading the model says so
        return table


def _normalizer_lowercases(tokenizer) -> bool:
    try:
        normalizer = json.loads(tokenizer.to_str()).get("normalizer") or {}
    except Exception:  # pragma: no cover - defensive: exotic tokenizer
        return False
    stack = [normalizer]
    while stack:
        node = stack.pop()
        if node.get("lowercase") or node.get("type") == "Lowercase":
            return True
        stack.extend(node.get("normalizers", []) or [])
    return False


def tokenizer_fingerprint(vocab: dict[str, int], lowercase: bool) -> str:
    """16 hex digits identifying a vocabulary and its casing (recorded in TFRecord metadata and checked on read)."""
    digest = hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode("utf-8"))
    digest.update(b"lower" if lowercase else b"cased")
    return digest.hexdigest()[:16]
