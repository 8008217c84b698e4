"""Classification metrics (§4.5): accuracy, per-class accuracy, macro-F1, confusion matrix (Fig. 7),
one-vs-rest ROC curves with macro and micro AUC (Fig. 8), and the mean ± std over folds."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (as the paper's Fig. 7)."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def roc_curve(y_bin, scores) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of a binary problem at every score threshold (from (0,0) to (1,1))."""
    y_bin = np.asarray(y_bin, bool)
    scores = np.asarray(scores, float)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], y_bin[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = y.sum(), (~y).sum()
    tpr = np.r_[0.0, tps / pos] if pos else np.r_[0.0, np.zeros(len(tps))]
    fpr = np.r_[0.0, fps / neg] if neg else np.r_[0.0, np.zeros(len(fps))]
    return fpr, tpr


def auc(fpr, tpr) -> float:
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def roc(y_true, probs, n_classes: int) -> dict:
    """One-vs-rest ROC per class (classes absent from ``y_true`` or never negative get None),
    the macro average (mean of the per-class curves on a common FPR grid) and the micro average (all pairs pooled)."""
    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, float)
    curves, aucs = {}, {}
    for c in range(n_classes):
        pos = y_true == c
        if pos.all() or not pos.any():
            curves[c], aucs[c] = None, None
            continue
        fpr, tpr = roc_curve(pos, probs[:, c])
        curves[c], aucs[c] = (fpr, tpr), auc(fpr, tpr)
    valid = [c for c in range(n_classes) if curves[c] is not None]
    out = {"per_class": aucs, "curves": curves, "macro": None, "micro": None, "macro_curve": None, "micro_curve": None}
    if valid:
        grid = np.unique(np.concatenate([curves[c][0] for c in valid]))
        mean_tpr = np.mean([np.interp(grid, *curves[c]) for c in valid], axis=0)
        out["macro_curve"] = (grid, mean_tpr)
        out["macro"] = float(np.mean([aucs[c] for c in valid]))
        onehot = np.eye(n_classes, dtype=bool)[y_true]
        fpr, tpr = roc_curve(onehot.ravel(), probs.ravel())
        out["micro_curve"], out["micro"] = (fpr, tpr), auc(fpr, tpr)
    return out


def classification_metrics(y_true, probs, classes, loss: float | None = None) -> dict:
    """Everything ``metrics.json`` reports for one set of predictions (``probs``: (n, classes) softmax)."""
    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, float)
    n_classes = len(classes)
    y_pred = probs.argmax(1) if len(probs) else np.zeros(0, int)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    f1 = np.where(support > 0, 2 * precision * np.nan_to_num(recall) / np.maximum(precision + np.nan_to_num(recall), 1e-12), np.nan)
    r = roc(y_true, probs, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(support[:, None] > 0, cm / np.maximum(support[:, None], 1), 0.0)
    present = support > 0
    m = {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "macro_f1": float(np.nanmean(f1[present])) if present.any() else None,
        "per_class_accuracy": {c: (None if np.isnan(recall[i]) else float(recall[i])) for i, c in enumerate(classes)},
        "per_class_f1": {c: (None if np.isnan(f1[i]) else float(f1[i])) for i, c in enumerate(classes)},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
        "confusion_normalized": np.round(norm, 4).tolist(),
        "auc": {"macro": r["macro"], "micro": r["micro"],
                "per_class": {c: r["per_class"][i] for i, c in enumerate(classes)}},
    }
    if loss is not None:
        m["loss"] = float(loss)
    return m


def summarize_folds(fold_metrics: list[dict], keys=("accuracy", "macro_f1")) -> dict:
    """Mean and (population) standard deviation over folds of the headline numbers, and the per-fold values."""
    out = {}
    for k in keys:
        vals = [m[k] for m in fold_metrics if m.get(k) is not None]
        out[k] = {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals)) if vals else None,
                  "folds": vals}
    aucs = [m["auc"]["macro"] for m in fold_metrics if m.get("auc", {}).get("macro") is not None]
    out["auc_macro"] = {"mean": float(np.mean(aucs)) if aucs else None, "std": float(np.std(aucs)) if aucs else None,
                        "folds": aucs}
    return out
