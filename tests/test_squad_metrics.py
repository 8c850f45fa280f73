"""Official SQuAD scoring, checked by hand on tests/fixtures/squad.

Fixture (v2.0, 8 questions, 6 answerable, 2 not) and predictions_v2.json:

    id  gold                              prediction            EM  F1
    q1  "The Eiffel Tower"/"Eiffel Tower" "the Eiffel Tower."   1   1     (articles, case, punctuation)
    q2  "1889"                            "in the year 1889"    0   1/2   ([in, year, 1889] vs [1889]: P 1/3 R 1)
    q3  "Paris, France"                   "  PARIS   france "   1   1     (whitespace, case)
    q4  "the World's Fair"                "World Fair"          0   1/2   ([world, fair] vs [worlds, fair])
    q5  (unanswerable)                    ""                    1   1
    q6  (unanswerable)                    "324 metres"          0   0
    q7  "Paris"/"Paris, France"           "France"              0   2/3   (max: [france] vs [paris, france])
    q8  "France"                          (missing)             0   0

    exact = 3/8 = 37.5         f1 = (1 + .5 + 1 + .5 + 1 + 0 + 2/3 + 0) / 8 = 58.333...
    HasAns: exact 2/6, f1 (1 + .5 + 1 + .5 + 2/3 + 0) / 6 = 61.111...    NoAns: 1/2, 1/2

Best threshold, null_odds_v2.json sorted: q1 -5, q2 -3, q3 -1, q6 0, q5 1, q4 2, q7 4; the
running score starts at 2 (the no-answer questions q5, q6, both predicted):
    exact: 3 (q1) 3 4 (q3, best: thresh -1) 3 (q6 non-empty: -1) 3 3 3  -> 4/8 = 50.0
    f1:    3 3.5 4.5 3.5 3.5 4.0 4.667 (q7, best: thresh 4)              -> 4.667/8 = 58.333...
"""

import json
import os
from pathlib import Path

import pytest

from bertbridge.core.tasks.qa.metrics import evaluate, exact_match, f1, find_best_thresh, normalize_answer, write_predictions
from bertbridge.core.tasks.qa.postprocess import Prediction
from bertbridge.core.tasks.qa.squad import Answer, QAExample, read_squad

FIXTURES = Path(__file__).parent / "fixtures" / "squad"


@pytest.fixture(scope="module")
def dev():
    return read_squad(FIXTURES / "dev_small_v2.json")


def load(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower.", "eiffel tower"),
        ("  the  World's   FAIR!! ", "worlds fair"),
        ("an apple a day, the end", "apple day end"),
        ("theater Anna another", "theater anna another"),  # articles only as whole words
        ("a.b", "ab"),  # punctuation goes before articles: "a.b" -> "ab", not "b"
        ("the-cat", "thecat"),
        ("¿Qué?", "¿qué"),  # only string.punctuation (ASCII) is removed
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Eiffel Tower.", "Eiffel Tower") == 1
    assert exact_match("Eiffel", "Eiffel Tower") == 0
    assert f1("in the year 1850", "1850") == 0.5
    assert f1("World Fair", "the World's Fair") == 0.5
    assert f1("France", ["Paris", "Paris, France"]) == pytest.approx(2 / 3)
    assert f1("x b b c", "b b d") == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))  # Counter overlap: 2
    assert f1("a b b c", "b b d") == pytest.approx(2 / 3)  # "a" is an article: [b, b, c] vs [b, b, d]
    assert exact_match("Paris", ["London", "paris"]) == 1


def test_v2_and_v1_rules_for_empty_answers():
    # v2: no gold -> gold is "", and empty vs empty scores 1
    assert (exact_match("", []), f1("", [])) == (1, 1.0)
    assert (exact_match("x", []), f1("x", [])) == (0, 0.0)
    # v2 drops gold answers that normalize to "" ("the"): only predictions normalizing to "" match
    assert (exact_match("", "the"), f1("", "the"), exact_match("a", "the"), f1("x", "the")) == (1, 1.0, 1, 0.0)
    # v1 keeps them: "a" and "the" both normalize to "" -> exact, but no token overlap -> F1 0
    assert (exact_match("a", "the", v2=False), f1("a", "the", v2=False)) == (1, 0.0)


def test_evaluate_fixture_by_hand(dev):
    result = evaluate(dev.examples, load("predictions_v2.json"))
    assert result == pytest.approx({
        "exact": 37.5, "f1": 100 * (4 + 2 / 3) / 8, "total": 8,
        "HasAns_exact": 100 * 2 / 6, "HasAns_f1": 100 * (3 + 2 / 3) / 6, "HasAns_total": 6,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        "missing": 1,
    })


def test_best_threshold_by_hand(dev):
    result = evaluate(dev.examples, load("predictions_v2.json"), null_score_diff=load("null_odds_v2.json"))
    assert result["best_exact"] == 50.0 and result["best_exact_thresh"] == -1.0
    assert result["best_f1"] == pytest.approx(100 * (4 + 2 / 3) / 8) and result["best_f1_thresh"] == 4.0
    assert result["exact"] == 37.5  # the main scores are unchanged


def test_find_best_thresh_official_walk():
    has_ans = {"a": True, "b": False, "c": True}
    preds = {"a": "x", "b": "", "c": "y"}
    scores = {"a": 1, "b": 1, "c": 0}
    # start 1 (b); a (0.1): +1 -> 2 best; b (0.2): 0; c (0.3): +0
    assert find_best_thresh(preds, scores, {"a": 0.1, "b": 0.2, "c": 0.3}, has_ans) == (100 * 2 / 3, 0.1)
    # nothing beats predicting no answer everywhere: threshold stays 0.0
    assert find_best_thresh(preds, {"a": 0, "b": 1, "c": 0}, {"a": 0.1, "b": 0.2, "c": 0.3}, has_ans) == (100 / 3, 0.0)


def test_na_prob_thresh_applies_to_the_main_scores(dev):
    preds, nulls = load("predictions_v2.json"), load("null_odds_v2.json")
    # null_score_diff > 1.5: q4 (2.0) and q7 (4.0) count as answered "" -> both answerable, so 0
    result = evaluate(dev.examples, preds, null_score_diff=nulls, na_prob_thresh=1.5)
    assert result["exact"] == 37.5 and result["f1"] == pytest.approx(100 * 3.5 / 8)
    # > -0.5: q3 (-1) stays; q6 (0) flips to "" -> right; q5 (1) stays right
    result = evaluate(dev.examples, preds, null_score_diff=nulls, na_prob_thresh=-0.5)
    assert result["NoAns_exact"] == 100.0


def test_v1_style_set_has_no_noans_keys_and_missing_counts_as_wrong():
    examples = [QAExample("a", "?", "Paris is big", (Answer("Paris", 0),), False),
                QAExample("b", "?", "Paris is big", (Answer("big", 9),), False)]
    result = evaluate(examples, {"a": "paris"})
    assert result == {"exact": 50.0, "f1": 50.0, "total": 2, "HasAns_exact": 50.0, "HasAns_f1": 50.0,
                      "HasAns_total": 2, "missing": 1}
    with pytest.raises(ValueError, match="null_score_diff has no value for 1 predicted question"):
        evaluate(examples, {"a": "paris", "b": "big"}, null_score_diff={"a": 0.0})


def test_write_predictions_is_atomic_and_official(tmp_path):
    out = tmp_path / "sub" / "predictions.json"
    preds = [Prediction("q1", "Café", 1.0, 0, 4, -1.0), Prediction("q2", "", 0.0, -1, -1, 2.0)]
    assert write_predictions(out, preds) == out
    assert json.loads(out.read_text(encoding="utf-8")) == {"q1": "Café", "q2": ""}
    write_predictions(out, {"q1": -1.0})
    assert json.loads(out.read_text(encoding="utf-8")) == {"q1": -1.0}
    assert os.listdir(out.parent) == ["predictions.json"]  # no temporary file left
