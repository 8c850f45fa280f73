"""Fast-tokenizer encoding to numpy, dynamic padding and length-grouped batches."""

import shutil

import numpy as np
import pytest

from bertbridge.core.errors import ModelNotFoundError, SpecError
from bertbridge.core.text.batching import collate, eval_batches, train_batches
from bertbridge.core.text.tokenize import TextEncoder


def test_encode_adds_special_tokens_lowercases_and_truncates(tokenizer_dir):
    enc = TextEncoder.from_pretrained(tokenizer_dir)
    assert enc.lowercase is True and enc.model_max_length == 64
    out = enc.encode(["The FILM was good", "bad " * 40], max_length=16)
    assert enc.tokens("The FILM")[1:3] == ["the", "film"]
    assert out.input_ids[0][0] == 2 and out.input_ids[0][-1] == 3  # [CLS] ... [SEP]
    assert out.lengths.tolist() == [6, 16]
    assert out.input_ids[0].dtype == np.int32


def test_pairs_get_segment_ids(tokenizer_dir):
    out = TextEncoder.from_pretrained(tokenizer_dir).encode(["good film"], ["bad plot ."], max_length=32)
    assert out.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def _words(n: int, seed: int) -> str:
    """``n`` words with punctuation and line breaks (some unknown to the tiny vocabulary)."""
    rng = np.random.default_rng(seed)
    pool = ["good", "film", "the", "plot", ".", ",", "unknownword", "superb\n", "Quite", "dull", "lovely,", "?"]
    return " ".join(pool[i] for i in rng.integers(0, len(pool), n))


@pytest.mark.parametrize("max_length", [4, 16, 64])
def test_long_texts_are_cut_before_tokenizing_with_the_same_result(tokenizer_dir, monkeypatch, max_length):
    enc = TextEncoder.from_pretrained(tokenizer_dir)
    # pairs: one side may be long; the other stays under PAIR_PREFIX_FACTOR * max_length tokens
    sparse = ("x" * 150 + " " * 70) * 400  # few tokens per character: long unknown words, runs of spaces
    texts = [_words(3000, 1), _words(2 * max_length, 2), "good film", _words(max_length, 3), sparse]
    pairs = ["bad plot .", _words(3000, 4), _words(3000, 5), "x", "good"]
    cut_single, cut_pairs = enc.encode(texts, max_length=max_length), enc.encode(texts, pairs, max_length=max_length)
    assert len(enc.usable_prefix(texts[0], max_length)) < len(texts[0]) // 10
    monkeypatch.setattr(TextEncoder, "usable_prefix", lambda self, text, max_tokens: text)  # tokenize whole
    whole_single, whole_pairs = enc.encode(texts, max_length=max_length), enc.encode(texts, pairs, max_length=max_length)
    for cut, whole in ((cut_single, whole_single), (cut_pairs, whole_pairs)):
        assert [a.tolist() for a in cut.input_ids] == [a.tolist() for a in whole.input_ids]
        assert [a.tolist() for a in cut.token_type_ids] == [a.tolist() for a in whole.token_type_ids]


def test_cutting_leaves_the_tokenizers_truncation_setting_alone(tokenizer_dir):
    enc = TextEncoder.from_pretrained(tokenizer_dir)
    enc.encode(["good film"], max_length=16)
    assert len(enc.usable_prefix(_words(3000, 7), 8)) < 1000
    assert enc._tokenizer.truncation["max_length"] == 16  # a caller between its own setting and encoding is safe


class _Recording:
    """Passes calls to a tokenizer, recording the longest text it was given."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.longest = tokenizer, 0

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def _note(self, text) -> None:
        texts = text if isinstance(text, tuple) else (text,)
        self.longest = max(self.longest, *(len(t) for t in texts))

    def encode(self, text, *args, **kwargs):
        self._note(text)
        return self.tokenizer.encode(text, *args, **kwargs)

    def encode_batch(self, inputs, *args, **kwargs):
        for item in inputs:
            self._note(item)
        return self.tokenizer.encode_batch(inputs, *args, **kwargs)


def test_a_megabyte_text_costs_only_its_usable_start(tokenizer_dir):
    # uncut, a truncating tokenizer keeps every overflowing chunk of both sides of a pair: a 5 MB
    # pair ran a 21 GB process out of memory
    enc = TextEncoder.from_pretrained(tokenizer_dir)
    enc._tokenizer = spy = _Recording(enc._tokenizer)
    huge = _words(800_000, 6)
    assert len(enc.usable_prefix(huge, 64 * 4)) < 64 * 64 * 4  # checked first: uncut, the pair below would exhaust memory
    out = enc.encode([huge, "x" * 5_000_000], [huge, "good"], max_length=64)
    assert out.lengths.tolist() == [64, 5]  # the unbroken 5 MB "word" is cut too, then unknown
    assert spy.longest <= 64 * 64 * 4  # PREFIX_MAX_CHARS_PER_TOKEN * max_length * PAIR_PREFIX_FACTOR


def test_folder_with_only_vocab_txt_tokenizes_identically(tokenizer_dir, tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json", "config.json"):
        shutil.copy(tokenizer_dir / name, tmp_path / name)
    texts = ["The Film was GOOD, really?", "unknownword plot"]
    a = TextEncoder.from_pretrained(tokenizer_dir).encode(texts, max_length=32)
    b = TextEncoder.from_pretrained(tmp_path).encode(texts, max_length=32)
    assert [x.tolist() for x in a.input_ids] == [x.tolist() for x in b.input_ids]
    saved = tmp_path / "saved"
    saved.mkdir()
    TextEncoder.from_pretrained(tmp_path).save(saved)
    assert (saved / "tokenizer.json").is_file()  # written when the source lacked it


def test_max_length_above_the_model_limit_is_a_spec_error(tokenizer_dir):
    with pytest.raises(SpecError, match="handles at most 64 tokens. Set training.max_seq_length to 64 or less"):
        TextEncoder.from_pretrained(tokenizer_dir).encode(["x"], max_length=128)


def test_folder_without_tokenizer(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no tokenizer.json or vocab.txt"):
        TextEncoder.from_pretrained(tmp_path)


def test_train_batches_cover_every_example_once_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = train_batches(lengths, 16, np.random.default_rng(1), group_by_length=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    random_batches = train_batches(lengths, 16, np.random.default_rng(1), group_by_length=False)
    padded = lambda bs: sum(int(lengths[b].max()) * len(b) for b in bs)  # noqa: E731
    assert padded(batches) < 0.75 * padded(random_batches)
    # batch order is shuffled, not longest-first every epoch
    maxima = [int(lengths[b].max()) for b in batches]
    assert maxima != sorted(maxima, reverse=True)


def test_train_batches_are_seeded():
    lengths = np.arange(100)
    a = train_batches(lengths, 8, np.random.default_rng(5))
    b = train_batches(lengths, 8, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_collate_pads_to_the_batch_not_the_maximum(tokenizer_dir):
    enc = TextEncoder.from_pretrained(tokenizer_dir)
    feats = enc.encode(["good", "the film was good and the plot was dull", "bad film"], max_length=64)
    batch = collate(feats, np.array([0, 2]), labels=np.array([1, 0, 0]))
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["input_ids"][0, 3] == enc.pad_id
    assert batch["labels"].tolist() == [1, 0]
    assert all(v.dtype == np.int64 for k, v in batch.items())


def test_eval_batches_sort_by_length():
    lengths = np.array([5, 1, 9, 3])
    assert [b.tolist() for b in eval_batches(lengths, 2)] == [[1, 3], [0, 2]]


def _cost(batches, lengths, call_cost):
    return sum(call_cost + len(b) * lengths[b].max() for b in batches)


def test_eval_batches_give_a_long_outlier_a_batch_of_its_own():
    lengths = np.array([12] * 31 + [128])
    batches = eval_batches(lengths, 32)  # the old cut: one batch of 32 padded to 128 (4,096 tokens)
    assert [len(b) for b in batches] == [31, 1] and batches[1].tolist() == [31]
    assert [len(b) for b in eval_batches(lengths, 32, call_cost=0)] == [32]  # call_cost=0: fixed cuts, as before


def test_eval_batches_cuts_are_the_cheapest_and_cover_every_index_once():
    import itertools

    rng = np.random.default_rng(0)
    for trial in range(40):
        n, size, call_cost = int(rng.integers(1, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 80))
        lengths = rng.integers(2, 60, size=n)
        batches = eval_batches(lengths, size, call_cost=call_cost)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n)) and max(len(b) for b in batches) <= size
        order = np.argsort(lengths, kind="stable")
        best = min(  # every way to cut the length-sorted order into runs of at most `size`
            _cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, n))], lengths, call_cost)
            for k in range(n) for cuts in itertools.combinations(range(1, n), k)
            if all(b - a <= size for a, b in zip((0, *cuts), (*cuts, n)))
        )
        assert _cost(batches, lengths, call_cost) == best, (trial, lengths.tolist(), size, call_cost)
