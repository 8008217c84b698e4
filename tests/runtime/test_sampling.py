"""ClipSampler (§3.1) and the aligned-clip reader on real image files."""
import cv2
import numpy as np
import pytest

from hac_runtime.clips import load_aligned_clip, normalize
from hac_runtime.errors import HacError
from hac_runtime.sampling import ClipSampler
from hac_runtime.spec import Preprocess


@pytest.mark.parametrize("n", [5, 7, 10, 23, 100])
def test_eval_takes_segment_centres(n):
    s = ClipSampler(5)
    idx = s.indices(n)
    segs = s.segments(n)
    assert len(idx) == 5 and idx == sorted(idx)
    assert segs[0][0] == 0 and segs[-1][1] == n
    for (a, b), i in zip(segs, idx):
        assert a <= i < b and i == (a + b - 1) // 2
    assert s.indices(n) == idx  # deterministic


def test_ten_frames_exact():
    assert ClipSampler(5).indices(10) == [0, 2, 4, 6, 8]
    assert ClipSampler(5).segments(10) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]


def test_train_is_random_one_per_segment():
    s = ClipSampler(5)
    rng = np.random.default_rng(0)
    draws = [s.indices(50, train=True, rng=rng) for _ in range(200)]
    for d in draws:
        for (a, b), i in zip(s.segments(50), d):
            assert a <= i < b
    assert len({tuple(d) for d in draws}) > 100
    assert s.indices(50, train=True, rng=np.random.default_rng(3)) == s.indices(50, train=True, rng=np.random.default_rng(3))


def test_short_clip_stretched_or_all_frames():
    assert ClipSampler(5).indices(3) == [0, 0, 1, 1, 2]
    assert ClipSampler(5).indices(1) == [0] * 5
    assert ClipSampler(5, pad="none").indices(3) == [0, 1, 2]
    with pytest.raises(HacError, match="no frames"):
        ClipSampler(5).indices(0)
    with pytest.raises(HacError, match="unknown padding"):
        ClipSampler(5, pad="zeros")


def test_load_aligned_clip_reads_real_pngs(tmp_path):
    for i in range(7):
        img = np.full((32, 32, 3), (10 * i, 100, 200), np.uint8)  # BGR on disk
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), img)
    pre = Preprocess(16, 3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = load_aligned_clip(tmp_path, pre)
    assert x.shape == (3, 3, 16, 16) and x.dtype == np.float32
    # eval centres of 7 frames in 3 segments [0,2) [2,5) [5,7) → 0, 3, 5; on disk BGR, so R = 200 and B = 10·i
    np.testing.assert_allclose(x[:, 0, 0, 0], (200 / 255 - 0.5) / 0.25, rtol=1e-5)
    np.testing.assert_allclose(x[:, 2, 0, 0], ((np.array([0, 3, 5]) * 10) / 255 - 0.5) / 0.25, rtol=1e-5, atol=1e-6)
    with pytest.raises(HacError, match="not a prepared clip folder"):
        load_aligned_clip(tmp_path / "missing", pre)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HacError, match="no aligned faces"):
        load_aligned_clip(tmp_path / "empty", pre)


def test_normalize_layout():
    faces = np.zeros((2, 4, 4, 3), np.uint8)
    faces[..., 1] = 255
    x = normalize(faces, [0, 0, 0], [1, 1, 1])
    assert x.shape == (2, 3, 4, 4)
    assert x[:, 1].min() == 1.0 and x[:, 0].max() == 0.0
