"""Alignment quality of one aligned face, in [0, 1]: is the crop a whole, frontal face?

Three measurements (benchmarks/faces.md, "Alignment quality"):

* ``frontal``: dlib's HOG frontal-face score of the face aligned to the canonical template
  at ``QUALITY_SIDE`` px (whatever the aligner and size of the crop), for the best window
  near its centre (−2 when none). Measured on real photos: every frontal face scored
  +0.97 … +2.1; the three-quarter view of skimage's ``camera`` (landmarks on the ear and
  cheek edge, a crop showing the ear) −1.0. Strong expressions lower it too: apex frames of
  hac-synth's clips (anger, glasses) went down to −0.96, so it cannot judge alone.
* ``outside``: the fraction of the crop that lies outside the frame (the black wedge of
  a face cut by the frame's edge): 0.30 and 0.33 on face_recognition's two
  ``obama_partial_face`` photos, 0 on whole faces.
* ``yaw`` (degrees, + = the subject's left): head pose from six landmarks fitted to a generic
  head (solvePnP, seen from straight ahead). The 68 points of a turned head come out
  frontal-shaped, so it underestimates the turn (29° for the camera photo; frontal photos
  read 2–38°), but an expression does not turn them.

A low frontal score counts as far as the landmarks also see a turn:
``turn = clip((|yaw| − 10°) / 10°, 0, 1)``, ``pose = 1 − turn · (1 − clip((frontal + 1.3) / 2.4, 0, 1))``,
``quality = pose · (1 − min(1, outside / 0.35))``. Measured: real whole faces 0.94–1.0,
hac-synth's 672 frames of 56 clips ≥ 0.27 (strong expressions, glasses), the camera's turned
head 0.10–0.13 (by the box of dlib's CNN at upsample 0 or 1), the two partial faces 0.08–0.11.
The threshold sits between, set on one real turned head: more licence-clean non-frontal
photos would tune it. Below ``MIN_QUALITY`` (0.2) a face gets ``ok: false``: hac-prepare writes no
crop for it (so training and INT8 calibration never see it) and the runtime does not feed it
to a clip.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

QUALITY_SIDE = 100   #: the face is scored aligned to the template at this size
MIN_QUALITY = 0.2    #: below: ok false (module doc)
_NEAR_CENTRE = (0.2, 0.25)  # a scoring window's centre within this much (x, y, in crop sides) of the crop's

# A generic head (mm-like units, y up, nose tip at the origin) for six of the 68 points: nose tip, chin,
# outer eye corners, mouth corners.
_HEAD = np.array([(0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0),
                  (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)])
_HEAD_POINTS = [30, 8, 36, 45, 48, 54]


@dataclass(frozen=True)
class AlignmentQuality:
    quality: float   #: in [0, 1]; ``ok`` at MIN_QUALITY and above
    frontal: float   #: HOG frontal-face score of the crop (−2 when no window near its centre)
    outside: float   #: fraction of the crop outside the frame
    yaw: float       #: head-yaw estimate, degrees

    @property
    def ok(self) -> bool:
        return self.quality >= MIN_QUALITY

    def why(self) -> str:
        """What made it bad, for people: ``turned head (frontal score -1.00, yaw ~29°)`` or ``0.31 of the crop
        outside the frame``."""
        parts = []
        if self.frontal < 0 and abs(self.yaw) > 10:
            parts.append(f"turned head (frontal score {self.frontal:+.2f}, yaw ~{self.yaw:.0f}°)")
        if self.outside > 0.1:
            parts.append(f"{self.outside:.2f} of the crop outside the frame")
        return "; ".join(parts) or f"quality {self.quality:.2f}"


def low_quality_note(count: int, of: int | None = None) -> str:
    """The words for faces found but all (or ``count`` of ``of``) below ``MIN_QUALITY``."""
    share = f"{count} of {of} faces" if of is not None else f"{count} face(s) found, all"
    return f"{share} below alignment quality {MIN_QUALITY} (turned away or cut by the frame's edge)"


def quality_of(frontal: float, outside: float, yaw: float) -> float:
    """The combined score in [0, 1] (module doc)."""
    turn = float(np.clip((abs(yaw) - 10.0) / 10.0, 0.0, 1.0)) if math.isfinite(yaw) else 1.0
    pose = 1.0 - turn * (1.0 - float(np.clip((frontal + 1.3) / 2.4, 0.0, 1.0)))
    return pose * (1.0 - min(1.0, outside / 0.35))


def frontal_score(bgr: np.ndarray, landmarks: np.ndarray) -> float:
    """dlib HOG's best frontal-face score for a window near the centre of the face in ``bgr`` (BGR or gray)
    aligned to the template at ``QUALITY_SIDE`` px."""
    from hac_runtime.faces.align import TemplateAligner
    from hac_runtime.faces.detectors import _gray, frontal_face_detector

    g = TemplateAligner(QUALITY_SIDE).align(_gray(bgr), landmarks)
    rects, scores, _ = frontal_face_detector().run(g, 0, -2.0)
    best = -2.0
    for r, s in zip(rects, scores):
        cx, cy = (r.left() + r.right()) / 2 / QUALITY_SIDE, (r.top() + r.bottom()) / 2 / QUALITY_SIDE
        if abs(cx - 0.5) < _NEAR_CENTRE[0] and abs(cy - 0.5) < _NEAR_CENTRE[1]:
            best = max(best, float(s))
    return best


@functools.lru_cache(maxsize=8)
def _crop_grid(size: int) -> np.ndarray:
    """The crop's sample points ``(n, 2)`` (x, y), about 32 × 32 of them (read-only: shared by every call)."""
    step = max(1, size // 32)
    v, u = np.mgrid[0:size:step, 0:size:step]
    grid = np.stack([u.ravel(), v.ravel()], 1).astype(np.float64)
    grid.flags.writeable = False
    return grid


def outside_fraction(matrix: np.ndarray, size: int, frame_shape) -> float:
    """Fraction of a ``size``² crop made by ``matrix`` (frame → crop) whose source lies outside the frame."""
    import cv2

    inv = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    pts = _crop_grid(size) @ inv[:, :2].T + inv[:, 2]
    h, w = frame_shape[:2]
    return float(((pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] > h - 1)).mean())


def head_yaw(landmarks: np.ndarray) -> float:
    """Yaw in degrees from six landmarks fitted to a generic head, seen from straight ahead: the camera centre on the
    face and a long focal length (10 face widths), so the estimate depends neither on where the face is in the frame
    nor on the frame's size."""
    import cv2

    lm = np.asarray(landmarks, np.float64)
    pts = lm[_HEAD_POINTS]
    centre, width = lm.mean(0), max(float(np.ptp(lm[:, 0])), 1.0)
    f = 10.0 * width
    camera = np.array([[f, 0, centre[0]], [0, f, centre[1]], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(_HEAD, pts, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan")
    r, _ = cv2.Rodrigues(rvec)
    return math.degrees(math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0])))


def assess(frame: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray, size: int,
           frontal: float | None = None) -> AlignmentQuality:
    """The quality of the ``size``² crop made from ``frame`` by ``matrix`` for the face of ``landmarks``.
    ``frontal``: a frontal score already measured for this face (a tracked frame reuses its detection's)."""
    frontal = frontal_score(frame, landmarks) if frontal is None else frontal
    outside = outside_fraction(matrix, size, frame.shape)
    yaw = head_yaw(landmarks)
    return AlignmentQuality(round(quality_of(frontal, outside, yaw), 4), round(frontal, 3), round(outside, 3),
                            round(yaw, 1))


def assessed_matrix(aligner, landmarks: np.ndarray, judge) -> tuple[np.ndarray, AlignmentQuality]:
    """``aligner``'s matrix for ``landmarks`` and ``judge(matrix)``'s quality. A sequence aligner whose
    reference would come from a bad frame is reset, so a clip's first *good* frame sets it (§4.2)."""
    fresh = getattr(aligner, "reference", False) is None
    matrix = aligner.matrix(landmarks)
    quality = judge(matrix)
    if fresh and not quality.ok:
        aligner.reset()
    return matrix, quality


__all__ = ["MIN_QUALITY", "QUALITY_SIDE", "AlignmentQuality", "assess", "assessed_matrix", "frontal_score",
           "head_yaw", "low_quality_note", "outside_fraction", "quality_of"]
