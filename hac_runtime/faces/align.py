"""Face alignment to a ``size``×``size`` crop (§4.2): per-sequence (the paper's) and to a canonical template.

Both produce BGR uint8 crops with the eyes level, the face centred and, for the
sequence aligner, one scale across the whole clip. Normalisation (mean/std) is
applied when the crops become model input (``hac_runtime.clips.normalize``).

*Template*: the eye centres, the nose tip and the mouth corners are mapped onto
fixed points (``TEMPLATE``): rotation from the eye line (eyes exactly level),
scale and position by least squares over the five points.

*Sequence* (the paper: "based on the position information of the first frame of
the video sequence, an affine transformation matrix was used to adjust the angle
of the subsequent image sequence"): the first good frame is aligned to the
template, which fixes the reference landmarks; every later frame is mapped onto
those reference positions by the least-squares similarity transform (rotation,
uniform scale, shift: the affine maps that do not distort the face) of its
expression-stable points (eye corners and nose, ``STABLE``). Mouth, brows and jaw
are left free, so expressions move them inside a still frame instead of moving
the frame. The reference holds through frames without a face; ``reset()`` starts
a new clip or track. A similarity rather than a general affine map: a free affine
fitted to a few points shears and squashes the face as the head turns.
"""
from __future__ import annotations

import math

import numpy as np

from hac_runtime.errors import HacError
from hac_runtime.faces.landmarks import MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, STABLE, eye_centres

ALIGNERS = ("sequence", "template")

# Canonical positions as fractions of the crop side: eye centres, nose tip, mouth corners.
# Inter-ocular distance 0.28 of the crop, eyes at 0.36 of its height; proportions of an average face (nose
# 0.57 and mouth 1.15 inter-ocular distances below the eyes), leaving brows, cheeks and chin inside the crop.
TEMPLATE = np.array([[0.36, 0.36], [0.64, 0.36], [0.50, 0.52], [0.384, 0.682], [0.616, 0.682]], np.float64)


def template_points(landmarks: np.ndarray) -> np.ndarray:
    """The five template points of a face (eye centres, nose tip, mouth corners), ``(5, 2)``."""
    left, right = eye_centres(landmarks.astype(np.float64))
    pts = [left, right, landmarks[NOSE_TIP], landmarks[MOUTH_LEFT], landmarks[MOUTH_RIGHT]]
    return np.stack(pts).astype(np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``2×3`` mapping points ``src`` onto ``dst`` (Umeyama 1991, no reflection)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    a = (s * d).sum()                                   # Σ s·d
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()   # Σ s×d
    n = (s ** 2).sum()
    if n <= 1e-12:
        raise HacError("degenerate landmarks: all points coincide")
    c, si = a / n, b / n                                # scale·cos θ, scale·sin θ
    lin = np.array([[c, -si], [si, c]])
    return np.hstack([lin, (md - lin @ ms)[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points ``(n, 2)`` through a ``2×3`` affine matrix."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_face(bgr: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``bgr`` by ``matrix`` into a ``size``×``size`` crop; large reductions are area-filtered first."""
    import cv2

    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 0.5:  # bilinear sampling would alias: shrink the face's region with INTER_AREA first
        inv = cv2.invertAffineTransform(matrix)
        corners = apply_transform(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
        h, w = bgr.shape[:2]
        x0, y0 = np.clip(np.floor(corners.min(0)) - 2, 0, [w, h]).astype(int)
        x1, y1 = np.clip(np.ceil(corners.max(0)) + 2, 0, [w, h]).astype(int)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = bgr[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # matrix ∘ (small → frame): small pixel centre (u, v) ↦ frame (x0 + (u + ½)/fx − ½, y0 + (v + ½)/fy − ½)
            pre = np.array([[1 / fx, 0, x0 + 0.5 / fx - 0.5], [0, 1 / fy, y0 + 0.5 / fy - 0.5], [0, 0, 1]], np.float64)
            matrix, bgr = matrix @ pre, small
    return cv2.warpAffine(bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class FaceAligner:
    """Base: ``matrix(landmarks)`` → ``2×3`` frame → crop; ``align(bgr, landmarks)`` → crop."""

    name = ""

    def __init__(self, size: int = 224):
        if size < 16:
            raise HacError(f"aligned face size must be >= 16 px, got {size}")
        self.size = size

    def matrix(self, landmarks: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def align(self, bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned face, BGR uint8 ``(size, size, 3)``."""
        return warp_face(bgr, self.matrix(landmarks), self.size)

    def reset(self) -> None:
        """Start a new clip or track (no state for per-frame aligners)."""

    def template_matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """Eyes level, then the five template points onto ``TEMPLATE`` by least squares (scale and shift)."""
        src = template_points(landmarks)
        (lx, ly), (rx, ry) = src[0], src[1]
        theta = math.atan2(ry - ly, rx - lx)
        rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
        p = src @ rot.T
        q = TEMPLATE * self.size
        pc, qc = p - p.mean(0), q - q.mean(0)
        denom = (pc ** 2).sum()
        if denom <= 1e-12:
            raise HacError("degenerate landmarks: all points coincide")
        s = (pc * qc).sum() / denom
        lin = s * rot
        return np.hstack([lin, (q.mean(0) - s * p.mean(0))[:, None]])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class TemplateAligner(FaceAligner):
    """Each frame on its own to the canonical template: for still images."""

    name = "template"

    def matrix(self, landmarks):
        return self.template_matrix(landmarks)


class SequenceAligner(FaceAligner):
    """The paper's: every frame onto the reference landmarks of the sequence's first good frame (§4.2)."""

    name = "sequence"

    def __init__(self, size: int = 224):
        super().__init__(size)
        self.reference: np.ndarray | None = None

    def reset(self) -> None:
        self.reference = None

    def matrix(self, landmarks):
        landmarks = np.asarray(landmarks, np.float64)
        if self.reference is None:
            m = self.template_matrix(landmarks)
            self.reference = apply_transform(m, landmarks[STABLE])
            return m
        return similarity_transform(landmarks[STABLE], self.reference)


_REGISTRY = {"sequence": SequenceAligner, "template": TemplateAligner}


def make_aligner(name: str = "sequence", size: int = 224) -> FaceAligner:
    """An aligner by name (``ALIGNERS``) producing ``size``×``size`` crops."""
    if isinstance(name, FaceAligner):
        return name
    try:
        return _REGISTRY[name](size)
    except KeyError:
        raise HacError(f"unknown aligner {name!r}; choose one of {', '.join(ALIGNERS)}") from None
