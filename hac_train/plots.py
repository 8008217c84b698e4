"""Figures as PNG files: training curves (Fig. 4), confusion matrices (Fig. 7), ROC curves (Fig. 8),
attention strips (Fig. 5) and CAM heat maps (Fig. 6). Matplotlib, Agg backend, written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hac_runtime.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def training_curves(history: list[dict], path, title: str = "") -> Path:
    """Accuracy and loss of the training and validation sets per epoch (Fig. 4)."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, [h["train_acc"] for h in history], "o-", label="train")
    a.plot(ep, [h["val_acc"] for h in history], "s-", label="validation")
    a.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    b.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    b.plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
    b.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion(cm, classes, path, normalized: bool = False, title: str = "") -> Path:
    """Rows true, columns predicted; counts or row-normalised (Fig. 7)."""
    plt = _plt()
    cm = np.asarray(cm, float)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalized else max(1.0, cm.max()))
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
           title=title or ("confusion matrix (normalised)" if normalized else "confusion matrix"))
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    hi = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{cm[i, j]:.2f}" if normalized else f"{int(cm[i, j])}", ha="center", va="center",
                    fontsize=8, color="white" if cm[i, j] > (0.5 if normalized else hi) else "black")
    return _save(fig, path)


def roc_curves(roc: dict, classes, path, title: str = "") -> Path:
    """One-vs-rest ROC per class plus the macro and micro averages (Fig. 8)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5.2))
    if roc.get("micro_curve") is not None:
        ax.plot(*roc["micro_curve"], ":", lw=3, label=f"micro-average (AUC {roc['micro']:.3f})")
        ax.plot(*roc["macro_curve"], ":", lw=3, label=f"macro-average (AUC {roc['macro']:.3f})")
    for i, c in enumerate(classes):
        cur = roc["curves"].get(i)
        if cur is not None:
            ax.plot(*cur, lw=1.3, label=f"{c} (AUC {roc['per_class'][i]:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate",
           title=title or "ROC (one vs rest)")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="lower right")
    else:  # every validation clip of one class: no class has both positives and negatives
        ax.text(0.5, 0.5, "ROC undefined: the validation clips\nhold fewer than two classes",
                ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _overlay(face_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    import cv2

    s = face_rgb.shape[0]
    h = cv2.resize(heat.astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(np.clip(h * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (face_rgb * (1 - alpha) + colour * alpha).astype(np.uint8)


def attention_strip(faces_rgb, self_weights, spatial, path, title: str = "") -> Path:
    """The k frames with their self-attention weight α (eq. 2) and, below, the spatial weights ω (eq. 5) overlaid."""
    plt = _plt()
    k = len(faces_rgb)
    rows = 2 if spatial is not None else 1
    fig, axes = plt.subplots(rows, k, figsize=(1.8 * k, 2.0 * rows + 0.4), squeeze=False)
    for i in range(k):
        ax = axes[0, i]
        ax.imshow(faces_rgb[i])
        ax.set_title(f"α={self_weights[i]:.3f}" if self_weights is not None else f"frame {i + 1}", fontsize=9)
        ax.axis("off")
        if spatial is not None:
            w = np.asarray(spatial[i], float)
            axes[1, i].imshow(_overlay(faces_rgb[i], w))  # ω is in (0, 1): shown on the paper's absolute scale
            axes[1, i].set_title(f"ω {w.min():.2f}–{w.max():.2f}", fontsize=8)
            axes[1, i].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def cam_strip(faces_rgb, cams, path, title: str = "") -> Path:
    """Frames over their class-activation heat maps (Grad-CAM on the last convolutional layer, Fig. 6)."""
    plt = _plt()
    k = len(faces_rgb)
    fig, axes = plt.subplots(2, k, figsize=(1.8 * k, 4.2), squeeze=False)
    for i in range(k):
        axes[0, i].imshow(faces_rgb[i])
        axes[0, i].axis("off")
        axes[1, i].imshow(_overlay(faces_rgb[i], cams[i]))
        axes[1, i].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
