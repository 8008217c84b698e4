"""dlib's 68-point landmark predictor (Ensemble of Regression Trees, §4.2) and landmark geometry.

Point numbering is iBUG 300-W's: jaw 0–16, brows 17–26, nose 27–35, eyes 36–47
(36–41 the eye on the image's left), mouth 48–67.
"""
from __future__ import annotations

import functools

import numpy as np

from hac_runtime.faces.detectors import Box, _gray
from hac_runtime.faces.models import LANDMARKS_68, model_path

EYE_LEFT = slice(36, 42)   # on the image's left (the subject's right eye)
EYE_RIGHT = slice(42, 48)
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54
# Points that barely move with expression: eye corners and the nose. Used to register frames.
STABLE = np.array([36, 39, 42, 45, 27, 28, 29, 30, 31, 32, 33, 34, 35])

# dlib HOG box from the landmarks' extent (measured: benchmarks/faces.py --calibrate):
# centre = extent centre + BOX_DY · extent height, side = BOX_SCALE · sqrt(extent area).
BOX_DY, BOX_SCALE = -0.105, 1.057


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye on the image's left and of the one on its right."""
    return landmarks[EYE_LEFT].mean(0), landmarks[EYE_RIGHT].mean(0)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, in the landmarks' pixels."""
    a, b = eye_centres(landmarks)
    return float(np.linalg.norm(b - a))


def box_from_landmarks(landmarks: np.ndarray) -> Box:
    """The face box a detector would give for these landmarks (dlib HOG convention): tracking between detections."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    w, h = hi - lo
    side = BOX_SCALE * float(np.sqrt(max(w, 1.0) * max(h, 1.0)))
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2 + BOX_DY * h
    return round(cx - side / 2), round(cy - side / 2), round(side), round(side)


@functools.lru_cache(maxsize=4)
def _shape_predictor(path: str):
    import dlib

    return dlib.shape_predictor(path)  # ~1 s to load 100 MB; read-only afterwards, so shared


class LandmarkPredictor:
    """dlib's 68-point shape predictor from ``face-recognition-models`` (loaded once per process)."""

    def __init__(self, model: str | None = None):
        self.model = str(model or model_path(LANDMARKS_68))
        self.predictor = _shape_predictor(self.model)

    def predict(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        """68 landmarks ``(68, 2)`` float32 in frame pixels for the face in ``box`` (x, y, w, h).

        ``bgr`` may also be the frame's grayscale (dlib reads intensities only).
        """
        import dlib

        x, y, w, h = (int(round(v)) for v in box)
        shape = self.predictor(np.ascontiguousarray(_gray(bgr)), dlib.rectangle(x, y, x + w - 1, y + h - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)
