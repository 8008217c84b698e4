"""Metrics against hand-computed values and against the rank (Mann-Whitney) definition of the AUC."""
import numpy as np
import pytest

from hac_train.metrics import auc, classification_metrics, confusion_matrix, roc, roc_curve, summarize_folds

CLASSES = ["a", "b", "c"]


def test_hand_computed():
    y = [0, 0, 1, 1, 2, 2]
    probs = np.array([[.8, .1, .1], [.3, .6, .1], [.2, .7, .1], [.1, .8, .1], [.1, .1, .8], [.5, .2, .3]])
    m = classification_metrics(y, probs, CLASSES)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    # F1: a: p=1/2 r=1/2 → .5; b: p=2/3 r=1 → .8; c: p=1 r=1/2 → 2/3
    assert m["per_class_f1"]["b"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["confusion_normalized"][0] == [0.5, 0.5, 0.0]
    assert m["support"] == {"a": 2, "b": 2, "c": 2}


def _rank_auc(pos_scores, neg_scores):
    wins = sum((p > n) + 0.5 * (p == n) for p in pos_scores for n in neg_scores)
    return wins / (len(pos_scores) * len(neg_scores))


def test_auc_equals_rank_statistic():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200).astype(bool)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes ties
    fpr, tpr = roc_curve(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert auc(fpr, tpr) == pytest.approx(_rank_auc(s[y], s[~y]))


def test_macro_micro_auc_and_missing_class():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)  # class 2 never occurs
    logits = rng.normal(size=(60, 3)) + 2.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = roc(y, probs, 3)
    assert r["per_class"][2] is None
    assert r["macro"] == pytest.approx(np.mean([r["per_class"][0], r["per_class"][1]]))
    onehot = np.eye(3, dtype=bool)[y]
    assert r["micro"] == pytest.approx(_rank_auc(probs[onehot], probs[~onehot]))
    m = classification_metrics(y, probs, CLASSES)
    assert m["per_class_accuracy"]["c"] is None and m["auc"]["per_class"]["c"] is None


def test_perfect_and_confusion_shape():
    y = [0, 1, 2, 2]
    m = classification_metrics(y, np.eye(3)[y], CLASSES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["auc"]["macro"] == 1.0 and m["auc"]["micro"] == 1.0
    assert confusion_matrix([0, 1], [1, 1], 3).tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_summarize_folds_mean_std():
    folds = [{"accuracy": a, "macro_f1": a - 0.1, "auc": {"macro": 0.9}} for a in (0.8, 0.9, 1.0)]
    s = summarize_folds(folds)
    assert s["accuracy"]["mean"] == pytest.approx(0.9)
    assert s["accuracy"]["std"] == pytest.approx(np.std([0.8, 0.9, 1.0]))
    assert s["accuracy"]["folds"] == [0.8, 0.9, 1.0]


def test_roc_plot_of_a_one_class_validation_set_says_so(tmp_path):
    """A validation split holding one class has no ROC: the plot says so, without matplotlib's legend warning."""
    import warnings

    from hac_train.plots import roc_curves

    r = roc(np.zeros(4, int), np.full((4, 2), 0.5), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = roc_curves(r, ["a", "b"], tmp_path / "roc.png")
    assert path.stat().st_size > 0
