"""QA windows: layout, overlap (doc_stride = shared tokens), offsets into the original context, labels."""

import json
import random

import numpy as np
import pytest

from bertbridge.core.errors import SpecError
from bertbridge.core.tasks.qa.features import QAFeatures, build_features, check_window_settings
from bertbridge.core.tasks.qa.squad import Answer, QAExample
from bertbridge.core.text.batching import collate
from bertbridge.core.text.tokenize import Encoded, TextEncoder

CLS, SEP = 2, 3  # ids in conftest's VOCAB and in SUBWORD_VOCAB
SUBWORD_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "tower", "##s", "eif", "##fel", "cafe",
                 "stand", "in", "paris", "where", "?", ".", ",", "naive", "zoe", "is", "big", "##ger"]


@pytest.fixture(scope="module")
def encoder(tokenizer_dir):
    return TextEncoder.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def subword_encoder(tmp_path_factory):
    """A vocab with word pieces (no tokenizer.json: built from vocab.txt), for answers inside words."""
    folder = tmp_path_factory.mktemp("subword")
    (folder / "vocab.txt").write_text("\n".join(SUBWORD_VOCAB) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 128}), encoding="utf-8")
    return TextEncoder.from_pretrained(folder)


def example(context, answer=None, question="where is the film ?", qid="q", impossible=False):
    answers = () if answer is None else (Answer(answer, context.index(answer)),)
    return QAExample(qid, question, context, answers, impossible)


def context_text(feats, w, context):
    """The context substrings of window w's context tokens."""
    return [context[a:b] for a, b in feats.offsets[w] if a >= 0]


def test_one_window_layout_offsets_and_segments(encoder):
    context = "  The film  was GOOD , really."
    feats = build_features([example(context, "GOOD")], encoder, max_seq_length=32, max_question_length=8, doc_stride=4, training=True)
    assert isinstance(feats, QAFeatures) and isinstance(feats, Encoded) and len(feats) == 1
    ids, types, offs = feats.input_ids[0], feats.token_type_ids[0], feats.offsets[0]
    question = encoder._tokenizer.encode("where is the film ?", add_special_tokens=False).ids
    n_q = len(question)
    assert ids[: n_q + 2].tolist() == [CLS, *question, SEP] and ids[-1] == SEP
    assert types.tolist() == [0] * (n_q + 2) + [1] * (len(ids) - n_q - 2)
    assert ids.dtype == np.int32 and types.dtype == np.int32 and offs.dtype == np.int32 and offs.shape == (len(ids), 2)
    assert (offs[: n_q + 2] == -1).all() and (offs[-1] == -1).all()
    assert context_text(feats, 0, context) == ["The", "film", "was", "GOOD", ",", "really", "."]
    start, end = int(feats.start_positions[0]), int(feats.end_positions[0])
    assert start == end == n_q + 2 + 3 and context[slice(*offs[start])] == "GOOD"
    assert feats.example_index.tolist() == [0] and feats.lengths.tolist() == [len(ids)]
    assert feats.labels.tolist() == [[start, end]]


def test_windows_match_the_fast_tokenizer_overflow_with_doc_stride_as_overlap(encoder):
    rng = random.Random(3)
    words = ["good", "film", "plot", "was", "not", "zebra", "Café", ",", "really"]
    examples = [example(" ".join(rng.choice(words) for _ in range(rng.randint(1, 70))), qid=str(i),
                        question=" ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))) for i in range(40)]
    feats = build_features(examples, encoder, max_seq_length=24, doc_stride=5, max_question_length=8)
    tok = encoder._tokenizer
    tok.enable_truncation(24, stride=5, strategy="only_second")
    try:
        expected = []
        for e in examples:
            first = tok.encode(e.question, e.context)
            expected += [first.ids] + [o.ids for o in first.overflowing]
    finally:
        tok.no_truncation()
    assert [x.tolist() for x in feats.input_ids] == expected
    # consecutive windows of one example share exactly doc_stride context tokens
    for w in range(1, len(feats)):
        if feats.example_index[w] == feats.example_index[w - 1]:
            prev = [tuple(o) for o in feats.offsets[w - 1] if o[0] >= 0]
            cur = [tuple(o) for o in feats.offsets[w] if o[0] >= 0]
            assert prev[-5:] == cur[:5] and prev[-6] != cur[0]
    assert max(feats.lengths) == 24


def test_long_questions_are_cut_to_max_question_length(encoder):
    feats = build_features([example("good film", question="good " * 30)], encoder, max_seq_length=32, doc_stride=2, max_question_length=5)
    assert feats.input_ids[0].tolist()[:7] == [CLS] + [encoder._tokenizer.token_to_id("good")] * 5 + [SEP]


def test_labels_per_window_answer_partly_outside_and_impossible(encoder):
    # 9 context tokens per window (16 - 4 question tokens - 3 specials), next window 9 - 4 = 5 tokens on:
    # windows [0, 9) [5, 14) [10, 19) [15, 24) [20, 26); the answer is tokens 12..15
    context = " ".join(["film"] * 12 + ["good", "plot", "was", "fine"] + ["book"] * 10)
    examples = [example(context, "good plot was fine"), example(context, impossible=True, qid="i")]
    feats = build_features(examples, encoder, max_seq_length=16, doc_stride=4, max_question_length=4, training=True)
    windows = [w for w in range(len(feats)) if feats.example_index[w] == 0]
    assert [context_text(feats, w, context).count("film") for w in windows] == [9, 7, 2, 0, 0]
    labelled = []
    for w in windows:
        s, e = int(feats.start_positions[w]), int(feats.end_positions[w])
        words = context_text(feats, w, context)
        if "good" in words and "fine" in words:
            assert context[feats.offsets[w][s][0] : feats.offsets[w][e][1]] == "good plot was fine"
            labelled.append(w)
        else:  # answer outside, or only partly inside (window 1 ends at "plot"; window 3 starts at "fine")
            assert (s, e) == (0, 0)
    assert labelled == [windows[2]]
    assert "good" in context_text(feats, windows[1], context) and "fine" in context_text(feats, windows[3], context)
    assert feats.labels[feats.example_index == 1].tolist() == [[0, 0]] * 5


def test_answer_ending_or_starting_inside_a_word_piece(subword_encoder):
    context = "the towers stand in Eiffel"
    cases = {"tower": "tower", "towe": "tower", "owers": "towers", "Eif": "Eif", "ffel": "Eiffel"}
    for answer, covered in cases.items():
        feats = build_features([example(context, answer, question="where ?")], subword_encoder,
                               max_seq_length=32, doc_stride=2, max_question_length=4, training=True)
        offs = feats.offsets[0]
        s, e = int(feats.start_positions[0]), int(feats.end_positions[0])
        assert context[offs[s][0] : offs[e][1]] == covered, answer


def test_offsets_map_accents_case_unicode_and_whitespace_to_the_original(subword_encoder):
    context = "\t Café   NAÏVE\u00a0zoë  😀 tower\n towers. Cafe\u0301 is bigger  "
    feats = build_features([example(context, "Cafe\u0301 is bigger", question="where ?")], subword_encoder,
                           max_seq_length=40, doc_stride=2, max_question_length=4, training=True)
    assert context_text(feats, 0, context) == [
        "Café", "NAÏVE", "zoë", "😀", "tower", "tower", "s", ".", "Cafe\u0301", "is", "big", "ger"]
    s, e = int(feats.start_positions[0]), int(feats.end_positions[0])
    assert context[feats.offsets[0][s][0] : feats.offsets[0][e][1]] == "Cafe\u0301 is bigger"


def test_answer_with_surrounding_whitespace_is_labelled_on_its_words(encoder):
    context = "the film was good  and fine"
    ex = QAExample("q", "was it good ?", context, (Answer(" good  ", 12),), False)
    feats = build_features([ex], encoder, max_seq_length=32, doc_stride=2, max_question_length=8, training=True)
    s, e = int(feats.start_positions[0]), int(feats.end_positions[0])
    assert s == e and context[slice(*feats.offsets[0][s])] == "good"


def test_shared_contexts_are_tokenized_once_and_examples_keep_their_windows(encoder):
    context = "good film " * 20
    examples = [example(context, qid=str(i), question=q) for i, q in enumerate(["good ?", "very good film ?", "bad ?"])]
    feats = build_features(examples, encoder, max_seq_length=20, doc_stride=3, max_question_length=6)
    assert sorted(set(feats.example_index.tolist())) == [0, 1, 2]
    assert np.all(np.diff(feats.example_index) >= 0)


def test_features_feed_collate_with_start_end_labels(encoder):
    feats = build_features([example("good film was fine", "fine"), example("bad plot", "bad")], encoder,
                           max_seq_length=32, doc_stride=2, max_question_length=8, training=True)
    batch = collate(feats, np.array([1, 0]), feats.labels)
    assert batch["input_ids"].shape == (2, int(feats.lengths.max()))
    assert batch["labels"].tolist() == feats.labels[[1, 0]].tolist()
    assert build_features([example("good film")], encoder, max_seq_length=32, doc_stride=2, max_question_length=8).labels is None


def test_the_shared_tokenizer_settings_are_restored(encoder):
    tok = encoder._tokenizer
    tok.enable_truncation(7, strategy="longest_first")
    try:
        feats = build_features([example("good film " * 30)], encoder, max_seq_length=32, doc_stride=2, max_question_length=8)
        assert len(feats) > 1 and tok.truncation["max_length"] == 7 and tok.padding is None
    finally:
        tok.no_truncation()
    assert encoder.encode(["good film " * 30], max_length=10).lengths.tolist() == [10]


def test_window_settings_are_validated_with_spec_field_names(encoder):
    check_window_settings(384, 128, 64)
    with pytest.raises(SpecError, match=(
        r"task\.doc_stride \(317\) must be smaller than training\.max_seq_length \(384\) - "
        r"task\.max_question_length \(64\) - 3 special tokens = 317"
    )):
        check_window_settings(384, 317, 64)
    with pytest.raises(SpecError, match=r"task\.doc_stride must be an integer >= 0"):
        check_window_settings(384, -1, 64)
    with pytest.raises(SpecError, match=r"task\.doc_stride"):
        build_features([example("good")], encoder, max_seq_length=32, doc_stride=24, max_question_length=8)
    with pytest.raises(SpecError, match=r"handles at most 64 tokens"):
        build_features([example("good")], encoder, max_seq_length=384)


def test_empty_input_and_whitespace_only_context(encoder):
    assert len(build_features([], encoder, max_seq_length=32, doc_stride=2, max_question_length=8)) == 0
    feats = build_features([example("   ")], encoder, max_seq_length=32, doc_stride=2, max_question_length=8, training=True)
    assert len(feats) == 1 and (feats.offsets[0] == -1).all() and feats.labels.tolist() == [[0, 0]]
