"""Aligned face clips as model input: normalisation and reading a prepared clip folder.

A prepared clip is a folder of aligned faces ``NNNNN.png`` written by
``hac-prepare`` (frames without a face have no PNG). The model takes RGB,
``(k, 3, S, S)`` float32, normalised with the checkpoint's mean and std.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hac_runtime.errors import HacError
from hac_runtime.sampling import ClipSampler


def normalize(faces_rgb: np.ndarray, mean, std) -> np.ndarray:
    """``(n, S, S, 3)`` uint8 RGB → ``(n, 3, S, S)`` float32, ``(x/255 - mean) / std``."""
    x = faces_rgb.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def clip_frames(clip_dir) -> list[Path]:
    """The aligned face images of a prepared clip folder, in frame order."""
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise HacError(f"{clip_dir}: not a prepared clip folder")
    frames = sorted(p for p in clip_dir.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not frames:
        raise HacError(f"{clip_dir}: no aligned faces in this clip")
    return frames


def read_face(path, image_size: int) -> np.ndarray:
    """One aligned face as ``(S, S, 3)`` uint8 RGB, resized to ``image_size`` if needed."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise HacError(f"{path}: unreadable image")
    if img.shape[0] != image_size or img.shape[1] != image_size:
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_aligned_clip(clip_dir, preprocess: dict, train: bool = False, rng: np.random.Generator | None = None,
                      sampler: ClipSampler | None = None) -> np.ndarray:
    """Sample k faces from a prepared clip (§3.1) → ``(k, 3, S, S)`` float32 normalised with ``preprocess``."""
    frames = clip_frames(clip_dir)
    sampler = sampler or ClipSampler(preprocess["k"])
    size = preprocess["image_size"]
    faces = np.stack([read_face(frames[i], size) for i in sampler.indices(len(frames), train=train, rng=rng)])
    return normalize(faces, preprocess["mean"], preprocess["std"])
