"""Evaluation protocols (§4.2): k-fold cross-validation, subject-independent where subjects are known.

``make_splits(labels, groups, folds)``: with ``folds ≥ 2`` every group (subject,
or the clip itself when subjects are unknown) lands in exactly one validation
fold, greedily balancing the class mix of the folds; ``folds == 1`` is one such
80/20 split (the first of five folds). ``official_split`` uses a layout's own
train/validation split (AFEW Train/Val, a manifest's ``split`` column).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hac_runtime.errors import HacError

PROTOCOLS = ("kfold", "official")


@dataclass(frozen=True)
class Split:
    name: str
    train: list[int]
    val: list[int]


def _group_folds(labels: np.ndarray, groups: list, n_folds: int, n_classes: int, seed: int) -> list[int]:
    """Fold number per sample: groups kept whole, class counts of the folds balanced greedily."""
    uniq = sorted(set(groups), key=str)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    members = {g: [] for g in uniq}
    for i, g in enumerate(groups):
        members[g].append(i)
    hist = {g: np.bincount(labels[members[g]], minlength=n_classes) for g in uniq}
    # big and class-peaked groups first (as sklearn's StratifiedGroupKFold), ties in random order
    ranked = sorted((uniq[j] for j in order), key=lambda g: -float(hist[g].sum()) - float(np.std(hist[g])) * 1e-3)
    fold_hist = np.zeros((n_folds, n_classes))
    total = np.bincount(labels, minlength=n_classes).astype(float)
    target = total / n_folds
    fold_of = {}
    for g in ranked:
        costs = []
        for f in range(n_folds):
            trial = fold_hist.copy()
            trial[f] += hist[g]
            costs.append((float(((trial - target) ** 2).sum()), trial[f].sum()))
        best = min(range(n_folds), key=lambda f: costs[f])
        fold_hist[best] += hist[g]
        fold_of[g] = best
    return [fold_of[g] for g in groups]


def make_splits(labels, groups=None, folds: int = 5, seed: int = 0, n_classes: int | None = None) -> list[Split]:
    """``folds`` train/validation splits; ``groups`` (e.g. subjects, None = unknown) never straddle a split."""
    labels = np.asarray(labels, int)
    n = len(labels)
    if folds < 1:
        raise HacError(f"--folds must be >= 1, got {folds}")
    n_classes = n_classes or int(labels.max()) + 1
    grouped = groups is not None and all(g is not None for g in groups)
    groups = list(groups) if grouped else list(range(n))
    n_groups = len(set(groups))
    parts = max(folds, 5) if folds == 1 else folds
    if n_groups < max(2, folds):
        what = "subjects" if grouped else "clips"
        hint = f" (use --folds {n_groups} or fewer, or --group-by clip)" if grouped and n_groups >= 2 else ""
        raise HacError(f"only {n_groups} {what} for {folds} fold(s); need at least {max(2, folds)}{hint}")
    parts = min(parts, n_groups)
    fold = np.asarray(_group_folds(labels, groups, parts, n_classes, seed))
    splits = []
    for f in range(1 if folds == 1 else folds):
        val = [int(i) for i in np.flatnonzero(fold == f)]
        train = [int(i) for i in np.flatnonzero(fold != f)]
        splits.append(Split("split" if folds == 1 else f"fold-{f + 1}", train, val))
    return splits


def official_split(splits_of_samples) -> list[Split]:
    """The layout's own train/validation split (AFEW Train/Val; a manifest's split column: train vs val/test)."""
    tags = [(s or "").lower() for s in splits_of_samples]
    train = [i for i, t in enumerate(tags) if t == "train"]
    val = [i for i, t in enumerate(tags) if t in ("val", "valid", "validation", "test")]
    if not train or not val:
        raise HacError("--protocol official needs a layout with a train and a validation split "
                       "(AFEW Train/Val, or a manifest 'split' column)")
    return [Split("official", train, val)]


def describe(split: Split, labels, groups=None) -> str:
    """``split: 24 train / 4 val clips, 3/1 subjects (held out: hopper)`` (names when at most six are held out)."""
    if groups is None or any(x is None for x in groups):
        g = ""
    else:
        held = sorted({str(groups[i]) for i in split.val})
        g = f", {len({groups[i] for i in split.train})}/{len(held)} subjects"
        if len(held) <= 6:
            g += f" (held out: {', '.join(held)})"
    return f"{split.name}: {len(split.train)} train / {len(split.val)} val clips{g}"
