"""Tests for bertbridge.core.tasks.classification.metrics.

Every expected number below was worked out by hand (arithmetic in comments)
and written as a literal; no reference implementation is used.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from bertbridge.core.tasks.classification import metrics as metrics_module
from bertbridge.core.tasks.classification.metrics import (
    classification_metrics,
    confusion_matrix,
    metric_key_part,
    multilabel_metrics,
)


def _no_warnings(fn, *args, **kwargs):
    """Call fn with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------
# confusion_matrix
# ---------------------------------------------------------------------------

# 3-class fixture used by several tests:
#   true 0: preds 0,0,1,2 -> row [2,1,1]
#   true 1: preds 1,1,0   -> row [1,2,0]
#   true 2: preds 2,2,2   -> row [0,0,3]
Y_TRUE_3 = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED_3 = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2]
LABELS_3 = ["cat", "dog", "bird"]


def test_confusion_matrix_counts_rows_true_cols_pred():
    cm = confusion_matrix(Y_TRUE_3, Y_PRED_3, 3)
    assert cm.dtype == np.int64
    assert cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 1], [1, 2, 0], [0, 0, 3]])


def test_confusion_matrix_is_not_transposed():
    # one example: true 0 predicted as 1 -> cm[0, 1] == 1, cm[1, 0] == 0
    cm = confusion_matrix([0], [1], 2)
    np.testing.assert_array_equal(cm, [[0, 1], [0, 0]])


def test_confusion_matrix_keeps_unused_classes():
    # K=4 but only classes 0 and 1 occur -> rows/cols 2 and 3 are all zero
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 4)
    assert cm.shape == (4, 4)
    np.testing.assert_array_equal(cm[:2, :2], [[1, 0], [1, 1]])
    assert cm[2:].sum() == 0 and cm[:, 2:].sum() == 0


@pytest.mark.parametrize(
    "y_true, y_pred, k, match",
    [
        ([0, 1], [0], 2, "same shape"),
        ([], [], 2, "empty"),
        ([0, 2], [0, 1], 2, r"index 2.*\[0, 2\)"),
        ([0, 1], [0, -1], 2, r"index -1"),
        ([[0, 1]], [[0, 1]], 2, "1-D"),
        ([0.5, 1.0], [0, 1], 2, "integer"),
        ([0, 1], [0, 1], 0, "num_classes"),
    ],
)
def test_confusion_matrix_errors(y_true, y_pred, k, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, k)


# ---------------------------------------------------------------------------
# classification_metrics
# ---------------------------------------------------------------------------


def test_perfect_prediction():
    y = np.array([0, 1, 2, 2, 1, 0])
    m = _no_warnings(classification_metrics, y, y.copy(), ["a", "b", "c"])
    for key in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc"):
        assert m[key] == pytest.approx(1.0), key
    for c in "abc":
        assert m[f"precision_{c}"] == pytest.approx(1.0)
        assert m[f"recall_{c}"] == pytest.approx(1.0)
        assert m[f"f1_{c}"] == pytest.approx(1.0)
        assert m[f"support_{c}"] == pytest.approx(2.0)  # each class occurs twice


def test_three_class_per_class_and_averages():
    m = _no_warnings(classification_metrics, np.array(Y_TRUE_3), np.array(Y_PRED_3), LABELS_3)
    # cm = [[2,1,1],[1,2,0],[0,0,3]]; trace = 7, N = 10
    # column (pred) sums = [3,3,4]; row (true) sums = [4,3,3]
    assert m["accuracy"] == pytest.approx(0.7)  # 7/10
    # cat:  P=2/3, R=2/4=1/2 -> F1 = 2*P*R/(P+R) = (2/3)/(7/6) = 4/7
    assert m["precision_cat"] == pytest.approx(2 / 3)
    assert m["recall_cat"] == pytest.approx(1 / 2)
    assert m["f1_cat"] == pytest.approx(4 / 7)
    assert m["support_cat"] == pytest.approx(4.0)
    # dog:  P=2/3, R=2/3 -> F1 = 2/3
    assert m["precision_dog"] == pytest.approx(2 / 3)
    assert m["recall_dog"] == pytest.approx(2 / 3)
    assert m["f1_dog"] == pytest.approx(2 / 3)
    assert m["support_dog"] == pytest.approx(3.0)
    # bird: P=3/4, R=3/3=1 -> F1 = 2*(3/4)*1/(7/4) = 6/7
    assert m["precision_bird"] == pytest.approx(3 / 4)
    assert m["recall_bird"] == pytest.approx(1.0)
    assert m["f1_bird"] == pytest.approx(6 / 7)
    assert m["support_bird"] == pytest.approx(3.0)
    # macro = (4/7 + 2/3 + 6/7)/3 = (12+14+18)/21/3 = 44/63 ~ 0.6984
    assert m["macro_f1"] == pytest.approx(44 / 63)
    # micro (single-label) = accuracy = 0.7
    assert m["micro_f1"] == pytest.approx(0.7)
    # weighted = (4*4/7 + 3*2/3 + 3*6/7)/10 = (16/7 + 14/7 + 18/7)/10 = 48/70 = 24/35 ~ 0.6857
    assert m["weighted_f1"] == pytest.approx(24 / 35)


def test_three_class_mcc_by_hand():
    m = classification_metrics(Y_TRUE_3, Y_PRED_3, LABELS_3)
    # Gorodkin R_K with n=10, c=trace=7, t=row sums=[4,3,3], p=col sums=[3,3,4]
    # cov(t,p) = c*n - t.p      = 70 - (12+9+12) = 37
    # cov(t,t) = n^2 - t.t      = 100 - (16+9+9) = 66
    # cov(p,p) = n^2 - p.p      = 100 - (9+9+16) = 66
    # MCC = 37 / sqrt(66*66) = 37/66 ~ 0.5606
    assert m["mcc"] == pytest.approx(37 / 66)


def test_binary_mcc_matches_closed_form():
    # TP=3 (idx 0-2), FN=1 (idx 3), FP=2 (idx 4-5), TN=4 (idx 6-9)
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    m = classification_metrics(y_true, y_pred, ["neg", "pos"])
    tp, tn, fp, fn = 3, 4, 2, 1
    closed = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    # = (12 - 2)/sqrt(5*4*6*5) = 10/sqrt(600) = 1/sqrt(6) ~ 0.4082
    assert closed == pytest.approx(1 / math.sqrt(6))
    assert m["mcc"] == pytest.approx(closed)
    # pos: P=3/5, R=3/4 -> F1 = 2*3/(5+4) = 2/3 ; neg: P=4/5, R=4/6 -> F1 = 8/11
    assert m["f1_pos"] == pytest.approx(2 / 3)
    assert m["f1_neg"] == pytest.approx(8 / 11)
    assert m["accuracy"] == pytest.approx(0.7)  # (3+4)/10


def test_mcc_perfectly_wrong_binary_is_minus_one():
    # TP=TN=0, FP=FN=2 -> (0 - 4)/sqrt(2*2*2*2) = -1
    m = classification_metrics([0, 0, 1, 1], [1, 1, 0, 0], ["a", "b"])
    assert m["mcc"] == pytest.approx(-1.0)
    assert m["accuracy"] == pytest.approx(0.0)


def test_class_never_predicted_gives_zero_without_warning():
    # labels a,b,c; c is never predicted
    # a: P=1/1, R=1/1 -> F1=1 ; b: P=1/3, R=1/1 -> F1=2*1/(3+1)=1/2 ;
    # c: P=0/0 -> 0, R=0/2=0 -> F1=0
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1])
    m = _no_warnings(classification_metrics, y_true, y_pred, ["a", "b", "c"])
    assert m["precision_c"] == 0.0
    assert m["recall_c"] == 0.0
    assert m["f1_c"] == 0.0
    assert m["support_c"] == pytest.approx(2.0)
    assert m["precision_b"] == pytest.approx(1 / 3)
    assert m["f1_b"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx(0.5)  # (1 + 1/2 + 0)/3
    # weighted = (1*1 + 1*1/2 + 2*0)/4 = 3/8
    assert m["weighted_f1"] == pytest.approx(3 / 8)
    assert all(not math.isnan(v) for v in m.values())


def test_label_absent_everywhere_still_counts_in_macro():
    # same data plus label "d" that never appears in y_true or y_pred
    # macro = (1 + 1/2 + 0 + 0)/4 = 3/8 ; weighted ignores d (support 0) -> 3/8
    m = _no_warnings(classification_metrics, [0, 1, 2, 2], [0, 1, 1, 1], ["a", "b", "c", "d"])
    assert m["macro_f1"] == pytest.approx(3 / 8)
    assert m["precision_d"] == 0.0
    assert m["recall_d"] == 0.0
    assert m["f1_d"] == 0.0
    assert m["support_d"] == 0.0


def test_mcc_zero_denominator_is_zero_without_warning():
    # constant prediction: p = [0, 4] -> cov(p,p) = 16 - 16 = 0 -> MCC defined as 0
    m = _no_warnings(classification_metrics, [0, 1, 1, 0], [1, 1, 1, 1], ["n", "p"])
    assert m["mcc"] == 0.0
    assert m["accuracy"] == pytest.approx(0.5)
    # single-class data perfectly predicted: cov(t,t) = cov(p,p) = 0 -> MCC 0
    m = _no_warnings(classification_metrics, [0, 0], [0, 0], ["only"])
    assert m["mcc"] == 0.0
    assert m["accuracy"] == pytest.approx(1.0)


def test_classification_keys_and_types():
    m = classification_metrics(Y_TRUE_3, Y_PRED_3, LABELS_3)
    expected = {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc"}
    for c in LABELS_3:
        expected |= {f"precision_{c}", f"recall_{c}", f"f1_{c}", f"support_{c}"}
    assert set(m) == expected
    assert all(type(v) is float for v in m.values())


def test_classification_sanitises_label_names():
    m = classification_metrics([0, 1], [0, 1], ["very good!", "so-so 2.0"])
    assert "f1_very_good_" in m
    assert "f1_so-so_2.0" in m
    assert m["f1_very_good_"] == pytest.approx(1.0)
    # every key/value survives a "name=value" log line round trip
    line = " ".join(f"{k}={v:.4f}" for k, v in m.items())
    parsed = dict(re.findall(r"([A-Za-z0-9_.\-]+)=(\S+)", line))
    assert set(parsed) == set(m)


@pytest.mark.parametrize(
    "y_true, y_pred, labels, match",
    [
        ([0, 1, 1], [0, 1], ["a", "b"], "same shape"),
        ([], [], ["a", "b"], "empty"),
        ([0, 1], [0, 2], ["a", "b"], r"index 2.*\[0, 2\)"),
        ([0, -1], [0, 1], ["a", "b"], r"index -1"),
        ([[0, 1]], [[0, 1]], ["a", "b"], "1-D"),
        ([0, 1], [0, 1], [], "at least one label"),
    ],
)
def test_classification_errors(y_true, y_pred, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, labels)


# ---------------------------------------------------------------------------
# multilabel_metrics
# ---------------------------------------------------------------------------

ML_LABELS = ["x", "y", "z"]
ML_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
ML_PROBS = np.array(
    [
        [0.9, 0.2, 0.6],
        [0.1, 0.7, 0.4],
        [0.8, 0.3, 0.45],
        [0.55, 0.1, 0.35],
    ]
)


def test_multilabel_threshold_half():
    m = _no_warnings(multilabel_metrics, ML_TRUE, ML_PROBS, ML_LABELS)
    # preds @0.5: [1,0,1] ok, [0,1,0] ok, [1,0,0] (true [1,1,0]) wrong, [1,0,0] (true [0,0,1]) wrong
    assert m["subset_accuracy"] == pytest.approx(0.5)  # 2/4
    # x: true [1,0,1,0], pred [1,0,1,1] -> TP=2 FP=1 FN=0: P=2/3 R=1 F1=2*2/(3+2)=4/5
    assert m["precision_x"] == pytest.approx(2 / 3)
    assert m["recall_x"] == pytest.approx(1.0)
    assert m["f1_x"] == pytest.approx(4 / 5)
    assert m["support_x"] == pytest.approx(2.0)
    # y: true [0,1,1,0], pred [0,1,0,0] -> TP=1 FP=0 FN=1: P=1 R=1/2 F1=2*1/(1+2)=2/3
    assert m["precision_y"] == pytest.approx(1.0)
    assert m["recall_y"] == pytest.approx(1 / 2)
    assert m["f1_y"] == pytest.approx(2 / 3)
    # z: true [1,0,0,1], pred [1,0,0,0] -> TP=1 FP=0 FN=1: F1=2/3
    assert m["f1_z"] == pytest.approx(2 / 3)
    assert m["support_z"] == pytest.approx(2.0)
    # micro: TP=4, predicted=3+1+1=5, true=6 -> P=4/5, R=4/6=2/3, F1=2*4/(5+6)=8/11
    assert m["micro_precision"] == pytest.approx(4 / 5)
    assert m["micro_recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(8 / 11)
    # macro = (4/5 + 2/3 + 2/3)/3 = (12+10+10)/15/3 = 32/45
    assert m["macro_f1"] == pytest.approx(32 / 45)
    # wrong cells: (row2,y), (row3,x), (row3,z) -> 3/12
    assert m["hamming_loss"] == pytest.approx(0.25)


def test_multilabel_other_threshold_changes_result():
    m = _no_warnings(multilabel_metrics, ML_TRUE, ML_PROBS, ML_LABELS, threshold=0.3)
    # preds @0.3: [1,0,1] ok, [0,1,1] wrong(z), [1,1,1] wrong(z), [1,0,1] wrong(x)
    assert m["subset_accuracy"] == pytest.approx(0.25)  # 1/4
    # x: pred [1,0,1,1] TP=2 FP=1 -> F1=4/5 ; y: pred [0,1,1,0] TP=2 -> F1=1
    # z: pred [1,1,1,1], true [1,0,0,1] -> TP=2 FP=2 FN=0: P=1/2 R=1 F1=2*2/(4+2)=2/3
    assert m["f1_x"] == pytest.approx(4 / 5)
    assert m["f1_y"] == pytest.approx(1.0)
    assert m["precision_z"] == pytest.approx(1 / 2)
    assert m["recall_z"] == pytest.approx(1.0)
    assert m["f1_z"] == pytest.approx(2 / 3)
    # micro: TP=6, predicted=3+2+4=9, true=6 -> P=2/3, R=1, F1=12/15=4/5
    assert m["micro_precision"] == pytest.approx(2 / 3)
    assert m["micro_recall"] == pytest.approx(1.0)
    assert m["micro_f1"] == pytest.approx(4 / 5)
    # macro = (4/5 + 1 + 2/3)/3 = (12+15+10)/15/3 = 37/45
    assert m["macro_f1"] == pytest.approx(37 / 45)
    # wrong cells: (1,z), (2,z), (3,x) -> 3/12
    assert m["hamming_loss"] == pytest.approx(0.25)
    # and it really differs from the 0.5 result
    m_half = multilabel_metrics(ML_TRUE, ML_PROBS, ML_LABELS, threshold=0.5)
    assert m["subset_accuracy"] != pytest.approx(m_half["subset_accuracy"])
    assert m["micro_f1"] != pytest.approx(m_half["micro_f1"])


def test_multilabel_probability_equal_to_threshold_is_positive():
    # prob 0.5 >= 0.5 -> predicted; prob 0.49 -> not predicted
    m = multilabel_metrics([[1, 0]], [[0.5, 0.49]], ["a", "b"])
    assert m["subset_accuracy"] == pytest.approx(1.0)
    assert m["recall_a"] == pytest.approx(1.0)


def test_multilabel_perfect():
    y = np.array([[1, 0, 1], [0, 1, 1]])
    m = _no_warnings(multilabel_metrics, y, y.astype(float), ["p", "q", "r"])
    for key in ("subset_accuracy", "micro_f1", "macro_f1", "micro_precision", "micro_recall"):
        assert m[key] == pytest.approx(1.0), key
    assert m["hamming_loss"] == 0.0
    assert m["support_r"] == pytest.approx(2.0)


def test_multilabel_zero_division_no_warning():
    # nothing predicted, and label "b" never true: every ratio with a 0 denominator -> 0.0
    y_true = np.array([[1, 0], [0, 0]])
    probs = np.array([[0.1, 0.2], [0.3, 0.0]])
    m = _no_warnings(multilabel_metrics, y_true, probs, ["a", "b"])
    assert m["micro_precision"] == 0.0  # 0/0
    assert m["micro_recall"] == 0.0  # 0/1
    assert m["micro_f1"] == 0.0
    assert m["precision_a"] == 0.0 and m["recall_a"] == 0.0 and m["f1_a"] == 0.0
    assert m["precision_b"] == 0.0 and m["recall_b"] == 0.0 and m["f1_b"] == 0.0
    assert m["macro_f1"] == 0.0
    # row 1 (all-zero truth, all-zero pred) is an exact match; row 0 is not -> 1/2
    assert m["subset_accuracy"] == pytest.approx(0.5)
    assert m["hamming_loss"] == pytest.approx(0.25)  # 1 wrong cell of 4
    assert all(not math.isnan(v) for v in m.values())


def test_multilabel_sanitises_label_names():
    m = multilabel_metrics([[1, 0]], [[0.9, 0.1]], ["toxic/severe", "ok ok"])
    assert "f1_toxic_severe" in m and "support_ok_ok" in m
    assert m["f1_toxic_severe"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "y_true, probs, labels, threshold, match",
    [
        ([[1, 0]], [[0.5, 0.5], [0.1, 0.1]], ["a", "b"], 0.5, "same shape"),
        ([[1, 0, 1]], [[0.5, 0.5, 0.5]], ["a", "b"], 0.5, "3 columns but 2 labels"),
        (np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"], 0.5, "empty"),
        ([1, 0], [0.5, 0.5], ["a", "b"], 0.5, "2-D"),
        ([[1, 0]], [[0.5, 0.5]], ["a", "b"], 0.0, "between 0 and 1"),
        ([[1, 0]], [[0.5, 0.5]], ["a", "b"], 1.0, "between 0 and 1"),
        ([[1, 0]], [[0.5, 0.5]], ["a", "b"], 1.5, "between 0 and 1"),
        ([[1, 0]], [[0.5, 0.5]], ["a", "b"], -0.1, "between 0 and 1"),
        ([[1, 0]], [[0.5, 0.5]], ["a", "b"], float("nan"), "between 0 and 1"),
        ([[2, 0]], [[0.5, 0.5]], ["a", "b"], 0.5, "0/1"),
        ([[1, 0]], [[1.5, -2.0]], ["a", "b"], 0.5, r"\[0, 1\]"),
    ],
)
def test_multilabel_errors(y_true, probs, labels, threshold, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y_true, probs, labels, threshold=threshold)


# ---------------------------------------------------------------------------
# metric_key_part
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, expected",
    [
        ("very good!", "very_good_"),
        ("a  /  b", "a_b"),  # a run of unsafe characters collapses to one "_"
        ("ok-1.2_x", "ok-1.2_x"),  # already safe: unchanged
        ("café", "café"),  # letters of any script are kept
        ("негатив!", "негатив_"),
        ("x=y", "x_y"),  # "=" would break name=value parsing
        ("tab\there", "tab_here"),
        ("", "_"),
    ],
)
def test_metric_key_part(label, expected):
    assert metric_key_part(label) == expected


def test_metric_key_part_output_is_regex_safe():
    for label in ["very good!", "α/β γ", "a=b c", "(x) [y]", "100%"]:
        assert re.fullmatch(r"[\w.\-]+", metric_key_part(label)), label


def test_labels_that_sanitise_alike_get_their_class_index():
    # "a b" and "a_b" both sanitise to "a_b": keys carry the class index instead of colliding
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a b", "a_b", "c"])
    assert {"f1_a_b_0", "f1_a_b_1", "f1_c"} <= set(m)
    assert "f1_a_b" not in m


# ---------------------------------------------------------------------------
# framework neutrality
# ---------------------------------------------------------------------------


def test_metrics_module_imports_only_numpy_and_stdlib():
    tree = ast.parse(Path(metrics_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "re", "typing", "numpy"}, imported
