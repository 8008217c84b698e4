"""Cross-validation splits: subject-independent, class-balanced, 80/20 for one fold, the official split."""
from collections import Counter

import numpy as np
import pytest

from hac_runtime.errors import HacError
from hac_train.protocol import make_splits, official_split


def _data(n_subjects=20, per_subject=6, n_classes=6, seed=0):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for s in range(n_subjects):
        for _ in range(per_subject):
            labels.append(int(rng.integers(n_classes)))
            groups.append(f"S{s:03d}")
    return labels, groups


def test_five_folds_subject_independent_and_complete():
    labels, groups = _data()
    splits = make_splits(labels, groups, folds=5, seed=1)
    assert [s.name for s in splits] == [f"fold-{i}" for i in range(1, 6)]
    seen = []
    for s in splits:
        assert not set(s.train) & set(s.val)
        assert sorted(s.train + s.val) == list(range(len(labels)))
        assert not {groups[i] for i in s.train} & {groups[i] for i in s.val}, "a subject straddles the split"
        seen += s.val
    assert sorted(seen) == list(range(len(labels))), "every clip is validated exactly once"
    sizes = [len(s.val) for s in splits]
    assert max(sizes) - min(sizes) <= 12  # 20 subjects of 6 clips: 4 subjects a fold


def test_folds_are_class_balanced():
    labels, groups = _data(n_subjects=40, per_subject=5, n_classes=4, seed=2)
    total = Counter(labels)
    for s in make_splits(labels, groups, folds=5, seed=0):
        val = Counter(labels[i] for i in s.val)
        for c in total:
            assert abs(val[c] - total[c] / 5) <= 0.5 * total[c] / 5 + 3


def test_one_fold_is_80_20_by_subject():
    labels, groups = _data()
    (s,) = make_splits(labels, groups, folds=1)
    assert s.name == "split"
    assert 0.15 <= len(s.val) / len(labels) <= 0.25
    assert not {groups[i] for i in s.train} & {groups[i] for i in s.val}


def test_unknown_subjects_split_by_clip_stratified():
    labels = [i % 7 for i in range(70)]
    (s,) = make_splits(labels, None, folds=1)
    assert len(s.val) == 14
    assert Counter(labels[i] for i in s.val) == Counter({c: 2 for c in range(7)})


def test_deterministic_and_seeded():
    labels, groups = _data()
    a = make_splits(labels, groups, 5, seed=3)
    assert a == make_splits(labels, groups, 5, seed=3)
    assert a != make_splits(labels, groups, 5, seed=4)


def test_too_few_subjects_is_a_clear_error():
    labels, groups = _data(n_subjects=4)
    with pytest.raises(HacError, match="only 4 subjects for 5 fold"):
        make_splits(labels, groups, 5)
    assert len(make_splits(labels, groups, 4)) == 4


def test_official_split():
    (s,) = official_split(["train", "train", "val", None, "test"])
    assert s.train == [0, 1] and s.val == [2, 4]
    with pytest.raises(HacError, match="official"):
        official_split([None, None])
