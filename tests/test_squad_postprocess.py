"""From logits to answers: best valid span, limits, null answers (v2), overlapping windows, exact text."""

import random
import re
import time

import numpy as np
import pytest

from bertbridge.core.tasks.qa.features import QAFeatures, build_features
from bertbridge.core.tasks.qa.metrics import normalize_answer
from bertbridge.core.tasks.qa.postprocess import NBestAnswer, Prediction, postprocess
from bertbridge.core.tasks.qa.squad import Answer, QAExample
from bertbridge.core.text.tokenize import TextEncoder

CONTEXT = "  Héllo   wörld,  ça\u00a0va?  Zoë 😀 ends.  "
N_Q = 2  # question tokens in the hand-made windows: [CLS] q q [SEP] context... [SEP]
HEAD = N_Q + 2


def spans_of(text):
    return [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]


def window(spans):
    offsets = np.array([(-1, -1)] * HEAD + list(spans) + [(-1, -1)], dtype=np.int32)
    ids = np.arange(len(offsets), dtype=np.int32)
    return ids, np.zeros(len(offsets), np.int32), offsets


def features(windows, example_index):
    ids, types, offs = zip(*windows)
    return QAFeatures(list(ids), list(types), example_index=np.array(example_index), offsets=list(offs))


def logits_for(n, start=None, end=None, base=0.0):
    """Two arrays of n logits with the given {token: value} overrides."""
    s, e = np.full(n, base), np.full(n, base)
    for k, v in (start or {}).items():
        s[k] = v
    for k, v in (end or {}).items():
        e[k] = v
    return s, e


def tok(k):
    """Window position of context token k."""
    return HEAD + k


EXAMPLE = QAExample("q", "?", CONTEXT, (), False)
SPANS = spans_of(CONTEXT)  # Héllo wörld , ça va ? Zoë 😀 ends .


def test_best_span_text_and_offsets_are_the_original_context():
    feats = features([window(SPANS)], [0])
    s, e = logits_for(len(feats.input_ids[0]), {tok(1): 5.0, tok(3): 2.0}, {tok(4): 4.0, tok(0): 3.0})
    [pred] = postprocess([EXAMPLE], feats, [s], [e])
    assert isinstance(pred, Prediction)
    assert (pred.text, pred.score) == ("wörld,  ça\u00a0va", 9.0)
    assert CONTEXT[pred.start : pred.end] == pred.text
    assert pred.nbest[0] == NBestAnswer(pred.text, pred.start, pred.end, 9.0, pred.nbest[0].probability)
    assert abs(sum(n.probability for n in pred.nbest) - 1.0) < 1e-9
    assert [n.score for n in pred.nbest] == sorted((n.score for n in pred.nbest), reverse=True)
    assert len(pred.nbest) == 20


def test_unicode_tokens_map_back_exactly():
    feats = features([window(SPANS)], [0])
    for k, expected in [(0, "Héllo"), (6, "Zoë"), (7, "😀")]:
        s, e = logits_for(len(feats.input_ids[0]), {tok(k): 9.0}, {tok(k): 9.0})
        assert postprocess([EXAMPLE], feats, [s], [e])[0].text == expected


def test_max_answer_length_and_end_before_start_are_respected():
    feats = features([window(SPANS)], [0])
    s, e = logits_for(len(feats.input_ids[0]), {tok(0): 10.0, tok(5): 0.2}, {tok(6): 10.0, tok(2): 0.5})
    assert postprocess([EXAMPLE], feats, [s], [e], max_answer_length=7)[0].text == "Héllo   wörld,  ça\u00a0va?  Zoë"
    pred = postprocess([EXAMPLE], feats, [s], [e], max_answer_length=3)[0]
    assert (pred.text, pred.score) == ("Héllo   wörld,", 10.5)  # tokens 0..2 beat 5..6 (10.2)
    assert all(sum(n.start <= a and b <= n.end for a, b in SPANS) <= 3 for n in pred.nbest)
    # the best start lies after the best end: the pair is never taken
    s, e = logits_for(len(feats.input_ids[0]), {tok(6): 10.0, tok(1): 1.0}, {tok(2): 10.0})
    assert postprocess([EXAMPLE], feats, [s], [e])[0].text == "wörld,"


def test_spans_outside_the_context_are_never_chosen():
    feats = features([window(SPANS)], [0])
    n = len(feats.input_ids[0])
    s, e = logits_for(n, {0: 50.0, 1: 50.0, HEAD - 1: 50.0, n - 1: 50.0, tok(2): 1.0}, {0: 50.0, 2: 50.0, n - 1: 50.0, tok(2): 1.0})
    pred = postprocess([EXAMPLE], feats, [s], [e])[0]
    assert pred.text == ","
    assert all(n.start >= 0 for n in pred.nbest)  # v1: no null entry


def test_v2_null_threshold_sign_convention():
    feats = features([window(SPANS)], [0])
    n = len(feats.input_ids[0])
    s, e = logits_for(n, {0: 3.0, tok(0): 2.0}, {0: 1.0, tok(0): 1.5})  # null 4.0, best span 3.5
    pred = postprocess([EXAMPLE], feats, [s], [e], v2=True)[0]
    assert (pred.text, pred.start, pred.end, pred.score, pred.null_score_diff) == ("", -1, -1, 4.0, 0.5)
    assert pred.nbest[0].text == "" and pred.nbest[0].start == -1 and pred.nbest[1].text == "Héllo"
    # null_score_diff 0.5 is not above a threshold of 0.5 or 1.0: answer
    assert postprocess([EXAMPLE], feats, [s], [e], v2=True, null_threshold=0.5)[0].text == "Héllo"
    # v1 ignores the null score (but still reports the difference)
    v1 = postprocess([EXAMPLE], feats, [s], [e])[0]
    assert (v1.text, v1.null_score_diff) == ("Héllo", 0.5) and all(x.text for x in v1.nbest)
    s[0] = 1.0  # null 2.0 < best 3.5
    pred = postprocess([EXAMPLE], feats, [s], [e], v2=True)[0]
    assert (pred.text, pred.null_score_diff) == ("Héllo", -1.5)
    assert postprocess([EXAMPLE], feats, [s], [e], v2=True, null_threshold=-2.0)[0].text == ""


def test_no_valid_span_predicts_empty_in_v1_too():
    feats = features([window([])], [0])
    s, e = logits_for(len(feats.input_ids[0]), {0: 1.0}, {0: 1.0})
    pred = postprocess([EXAMPLE], feats, [s], [e])[0]
    assert (pred.text, pred.start, pred.end, pred.nbest) == ("", -1, -1, [])
    assert pred.null_score_diff == float("inf")


def test_overlapping_windows_count_a_span_once_and_null_is_the_minimum():
    # window A: context tokens 0..5, window B: tokens 3..9 (3, 4, 5 shared)
    feats = features([window(SPANS[:6]), window(SPANS[3:])], [0, 0])
    na, nb = (len(x) for x in feats.input_ids)
    sa, ea = logits_for(na, {0: 1.0, tok(3): 4.0}, {0: 1.0, tok(4): 4.0})  # "ça va" 8, null 2
    sb, eb = logits_for(nb, {0: 5.0, tok(0): 6.0}, {0: 5.0, tok(1): 6.0})  # same span 12, null 10
    pred = postprocess([EXAMPLE], feats, [sa, sb], [ea, eb], v2=True)[0]
    assert pred.text == "ça\u00a0va" and pred.score == 12.0
    assert pred.null_score_diff == 2.0 - 12.0
    spans = [(n.start, n.end) for n in pred.nbest]
    assert len(spans) == len(set(spans))
    assert [n.score for n in pred.nbest if n.text == "ça\u00a0va"] == [12.0]


def test_examples_keep_their_order_and_windows_may_come_in_any_order():
    second = QAExample("r", "?", "only  this", (), False)
    feats = features([window(spans_of("only  this")), window(SPANS)], [1, 0])
    n0, n1 = (len(x) for x in feats.input_ids)
    s0, e0 = logits_for(n0, {tok(1): 3.0}, {tok(1): 3.0})
    s1, e1 = logits_for(n1, {tok(6): 3.0}, {tok(6): 3.0})
    preds = postprocess([EXAMPLE, second], feats, [s0, s1], [e0, e1])
    assert [(p.id, p.text) for p in preds] == [("q", "Zoë"), ("r", "this")]


def test_padded_2d_logits_give_the_same_answers():
    feats = features([window(SPANS[:4]), window(SPANS)], [0, 0])
    rng = np.random.default_rng(0)
    rows_s = [rng.normal(size=len(x)) for x in feats.input_ids]
    rows_e = [rng.normal(size=len(x)) for x in feats.input_ids]
    width = int(feats.lengths.max()) + 3
    pad_s, pad_e = np.full((2, width), 99.0), np.full((2, width), 99.0)  # padding must be ignored
    for k in range(2):
        pad_s[k, : len(rows_s[k])], pad_e[k, : len(rows_e[k])] = rows_s[k], rows_e[k]
    a = postprocess([EXAMPLE], feats, rows_s, rows_e, v2=True)[0]
    b = postprocess([EXAMPLE], feats, pad_s.astype(np.float32), pad_e.astype(np.float32), v2=True)[0]
    assert (a.text, [n.text for n in a.nbest]) == (b.text, [n.text for n in b.nbest])
    assert abs(a.score - b.score) < 1e-5
    with pytest.raises(ValueError, match=r"start_logits has shape \(2, 3\); expected \(2, >= "):
        postprocess([EXAMPLE], feats, pad_s[:, :3], pad_e)
    with pytest.raises(ValueError, match=r"end_logits has 1 rows for 2 windows"):
        postprocess([EXAMPLE], feats, rows_s, rows_e[:1])


def test_round_trip_gold_token_logits_recover_the_gold_answers(tokenizer_dir):
    """Logits of +10 on each labelled window's gold start/end give back the gold text
    (answers are whole words here, so exactly; v2 questions without answer give "")."""
    encoder = TextEncoder.from_pretrained(tokenizer_dir)
    rng = random.Random(7)
    words = ["good", "film", "plot", "Was", "not", "zebra", "Café", "naïve", ",", "really", "ÉLAN", "x"]
    examples = []
    for i in range(300):
        toks = [rng.choice(words) for _ in range(rng.randint(1, 60))]
        gaps = [rng.choice([" ", "  ", "\u00a0", " \n "]) for _ in toks]
        context = rng.choice(["", " ", "\t "]) + "".join(t + g for t, g in zip(toks, gaps))
        starts = np.cumsum([0] + [len(t) + len(g) for t, g in zip(toks, gaps)]) + (len(context) - len(context.lstrip()))
        if i % 5 == 0:
            examples.append(QAExample(str(i), "good film ?", context, (), True))
            continue
        a = rng.randrange(len(toks))
        b = min(len(toks), a + rng.randint(1, 4))
        start, end = int(starts[a]), int(starts[b - 1]) + len(toks[b - 1])
        examples.append(QAExample(str(i), "was it good ?", context, (Answer(context[start:end], start),), False))
    feats = build_features(examples, encoder, max_seq_length=24, doc_stride=6, max_question_length=6, training=True)
    start_logits = [np.zeros(len(x)) for x in feats.input_ids]
    end_logits = [np.zeros(len(x)) for x in feats.input_ids]
    for w in range(len(feats)):
        start_logits[w][feats.start_positions[w]] += 10.0
        end_logits[w][feats.end_positions[w]] += 10.0
    preds = postprocess(examples, feats, start_logits, end_logits, v2=True, max_answer_length=10)
    for example, pred in zip(examples, preds):
        gold = example.answers[0].text if example.answers else ""
        assert pred.text == gold, (example, pred)
        assert normalize_answer(pred.text) == normalize_answer(gold)
        if gold:
            assert example.context[pred.start : pred.end] == gold


def test_round_trip_with_word_pieces_extends_to_whole_word_pieces(tmp_path):
    import json

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "tower", "##s", "eif", "##fel", "big", "##ger", "is", "the", "?"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    encoder = TextEncoder.from_pretrained(tmp_path)
    context = "the Eiffel towers is bigger"
    cases = [("towers", "towers"), ("Eif", "Eif"), ("ffel tow", "Eiffel tower"), ("bigge", "bigger")]
    examples = [QAExample(str(i), "the ?", context, (Answer(a, context.index(a)),), False) for i, (a, _) in enumerate(cases)]
    feats = build_features(examples, encoder, max_seq_length=16, doc_stride=2, max_question_length=4, training=True)
    s = [np.zeros(len(x)) for x in feats.input_ids]
    e = [np.zeros(len(x)) for x in feats.input_ids]
    for w in range(len(feats)):
        s[w][feats.start_positions[w]] += 10.0
        e[w][feats.end_positions[w]] += 10.0
    preds = postprocess(examples, feats, s, e)
    assert [p.text for p in preds] == [covered for _, covered in cases]
    assert all(gold in p.text for (gold, _), p in zip(cases, preds))


def test_five_thousand_windows_postprocess_quickly():
    rng = np.random.default_rng(0)
    contexts = ["w" * 5 + " " + " ".join("word" for _ in range(150))]
    spans = spans_of(contexts[0])
    wins = [window(spans[:120]), window(spans[30:])]  # 2 windows per example
    n_ex = 2500
    feats = features(wins * n_ex, np.repeat(np.arange(n_ex), len(wins)))
    width = int(feats.lengths.max())
    s = rng.normal(size=(len(feats), width)).astype(np.float32)
    e = rng.normal(size=(len(feats), width)).astype(np.float32)
    examples = [QAExample(str(i), "?", contexts[0], (), False) for i in range(n_ex)]
    t0 = time.perf_counter()
    preds = postprocess(examples, feats, s, e, v2=True)
    elapsed = time.perf_counter() - t0
    assert len(preds) == n_ex and len(feats) == 5000
    assert elapsed < 10.0, elapsed  # typically ~0.2 s; the bound catches a quadratic blow-up, not noise (3.1 s seen under load)


def test_features_must_match_the_examples():
    assert postprocess([], QAFeatures([], []), [], []) == []
    feats = features([window(SPANS)], [1])
    s, e = logits_for(len(feats.input_ids[0]))
    with pytest.raises(ValueError, match=r"do not match the 1 examples given"):
        postprocess([EXAMPLE], feats, [s], [e])
    with pytest.raises(ValueError, match=r"one entry per window"):
        QAFeatures([np.zeros(3, np.int32)], [np.zeros(3, np.int32)], example_index=np.array([0, 0]), offsets=[])
