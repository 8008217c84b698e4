"""Prepared clips as a torch dataset: k-segment sampling (§3.1, random when training) and light augmentation.

Randomness comes from ``(seed, epoch, index)`` alone, never from global state,
so an epoch draws the same frames and augmentations whatever the number of
DataLoader workers or processes, and a resumed run repeats it exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from hac_runtime.clips import clip_frames, normalize, read_face
from hac_runtime.sampling import ClipSampler
from hac_runtime.spec import Preprocess


def augment_clip(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random geometric + photometric change applied alike to all frames of ``(n, S, S, 3)`` uint8 faces:
    horizontal flip, rotation ±8°, scale 0.9–1.1, shift ±6 %, brightness and contrast ±20 %."""
    import cv2

    n, s = faces.shape[0], faces.shape[1]
    angle = rng.uniform(-8, 8)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.06, 0.06, 2) * s
    flip = rng.random() < 0.5
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
    m[:, 2] += shift
    if flip:
        m[0] = -m[0]
        m[0, 2] += s - 1
    gain = rng.uniform(0.8, 1.2)
    contrast = rng.uniform(0.8, 1.2)
    out = np.empty_like(faces)
    for i in range(n):
        f = cv2.warpAffine(faces[i], m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        f = f.astype(np.float32)
        mean = f.mean()
        out[i] = np.clip((f - mean) * contrast + mean * gain, 0, 255).astype(np.uint8)
    return out


class ClipDataset(torch.utils.data.Dataset):
    """``(clip (k, 3, S, S) float32, label, index)`` for each prepared clip; with ``repeats`` R > 1 (training)
    every clip appears R times per epoch, each time with other random frames and augmentation."""

    def __init__(self, clips, classes, preprocess: Preprocess, train: bool = False, augment: bool = True, seed: int = 0,
                 repeats: int = 1):
        self.clips = list(clips)
        self.repeats = max(1, int(repeats)) if train else 1
        self.classes = list(classes)
        self.labels = [self.classes.index(c.sample.label) for c in self.clips] * self.repeats
        self.preprocess = preprocess
        self.train = train
        self.augment = augment and train
        self.seed = seed
        self.epoch = 0
        self.sampler = ClipSampler(preprocess.k)
        self._frames = [None] * len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips) * self.repeats

    def frames(self, i: int):
        if self._frames[i] is None:
            self._frames[i] = clip_frames(self.clips[i].faces_dir)
        return self._frames[i]

    def faces(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The k sampled faces of clip ``i`` as ``(k, S, S, 3)`` uint8 RGB (centre frames when ``rng`` is None)."""
        frames = self.frames(i)
        idx = self.sampler.indices(len(frames), train=rng is not None, rng=rng)
        return np.stack([read_face(frames[j], self.preprocess.image_size) for j in idx])

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        faces = self.faces(i % len(self.clips), rng)
        if self.augment:
            faces = augment_clip(faces, rng)
        x = normalize(faces, self.preprocess.mean, self.preprocess.std)
        return torch.from_numpy(x), self.labels[i], i


def class_weights(labels, n_classes: int) -> list[float]:
    """Inverse-frequency weights (mean 1) for an imbalanced training set."""
    counts = np.bincount(np.asarray(labels, int), minlength=n_classes).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return [float(v) if math.isfinite(v) else 0.0 for v in w]
