"""Aligned face clips as model input: normalisation and reading a prepared clip folder.

A prepared clip is a folder of aligned faces ``NNNNN.png`` written by
``hac-prepare`` (frames without a face have no PNG). The model takes RGB,
``(k, 3, S, S)`` float32, normalised with the checkpoint's mean and std.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hac_runtime.errors import HacError
from hac_runtime.sampling import ClipSampler
from hac_runtime.spec import Preprocess


def normalize(faces_rgb: np.ndarray, mean, std) -> np.ndarray:
    """``(n, S, S, 3)`` uint8 RGB → ``(n, 3, S, S)`` float32, ``(x/255 - mean) / std``."""
    x = faces_rgb.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


FACE_SUFFIX = ".png"  #: every aligned face hac-prepare writes is ``NNNNN.png``


def face_name(frame: int) -> str:
    """The file name of the aligned face of source frame ``frame`` (``00042.png``)."""
    return f"{frame:05d}{FACE_SUFFIX}"


def face_files(clip_dir) -> list[Path]:
    """The one rule for which files of a prepared clip folder are its faces: visible ``NNNNN.png`` files, in
    frame order. Reading clips, checking a clip is complete and finding calibration clips all use it."""
    return sorted(p for p in Path(clip_dir).iterdir()
                  if p.suffix.lower() == FACE_SUFFIX and not p.name.startswith(".") and p.is_file())


def clip_folders(root) -> list[Path]:
    """Every folder under ``root`` (``root`` included; hidden folders, links and unreadable folders not) that
    holds aligned faces, in path order."""
    root = Path(root)
    found = []
    for folder, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # os.walk does not follow links
        try:
            if face_files(folder):
                found.append(Path(folder))
        except OSError:
            continue
    return sorted(found)


def clip_frames(clip_dir) -> list[Path]:
    """The aligned face images of a prepared clip folder, in frame order; a folder without any is one line."""
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise HacError(f"{clip_dir}: not a prepared clip folder")
    frames = face_files(clip_dir)
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


def load_aligned_clip(clip_dir, preprocess: Preprocess, train: bool = False, rng: np.random.Generator | None = None,
                      sampler: ClipSampler | None = None) -> np.ndarray:
    """Sample k faces from a prepared clip (§3.1) → ``(k, 3, S, S)`` float32 normalised with ``preprocess``."""
    frames = clip_frames(clip_dir)
    sampler = sampler or ClipSampler(preprocess.k)
    size = preprocess.image_size
    faces = np.stack([read_face(frames[i], size) for i in sampler.indices(len(frames), train=train, rng=rng)])
    return normalize(faces, preprocess.mean, preprocess.std)
