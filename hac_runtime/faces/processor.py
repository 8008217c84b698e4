"""FaceProcessor: detect → 68 landmarks → align, frame by frame, with landmark tracking between detections.

With ``detect_every=N`` the detector runs on every N-th frame; in between, the
face box is re-derived from the previous frame's landmarks, confirmed by a HOG
search in a small window around it, and the landmarks predicted again inside it
(~5 ms a frame against ~17 ms for a HOG detection on 640×480, ~1.9 s for dlib's
CNN: benchmarks/faces.md). A tracked face that is not found there, leaves the
frame, jumps or changes scale abruptly is dropped, and the detector runs on that
frame instead. The single-frame steps (``detect``, ``landmarks_for``, ``track``,
``pick``, ``align``) are public so a multi-face runtime can keep one tracked face
(and one ``SequenceAligner``) per track.

A face starts only from a detection scoring at least the detector's ``new_face_score``
(a weaker one only continues the face followed), and it is tentative until the
detector, run again on the next frame, finds it as strongly (ByteTrack's activation,
as ``pipeline.tracker`` does for many faces). ``process`` holds a tentative face's
frame until then: one the next frame does not confirm is given out as no face
(``unconfirmed`` counts them), so a false box seen on one frame (a badge, a poster)
is never a clip's face. A photo (``media.is_photo``) has no next frame: its face is
confirmed at once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

import numpy as np

from hac_runtime.boxes import continuation, iou
from hac_runtime.errors import HacError
from hac_runtime.faces.align import FaceAligner, make_aligner, similarity_transform, warp_face
from hac_runtime.faces.detectors import DEFAULT_DETECTOR, Box, FaceDetector, _gray, make_detector
from hac_runtime.faces.landmarks import STABLE, LandmarkPredictor, box_from_landmarks, interocular
from hac_runtime.faces.quality import AlignmentQuality, assess, assessed_matrix


#: the local search's window reaches this share of the face's size beyond it on each side: at 25 fps a face
#: moves far less between frames (benchmarks/pipeline.md: 0.5 → 0.35 → 0.25 with the face at 90 px, 3.2 → 2.5 → 1.8 ms per tracked face)
SEARCH_MARGIN = 0.25
#: the local search scales the face to about this many pixels: just above HOG's 80 px window, so its image
#: pyramid has three levels (at 100 px with 0.35 margins, a 170 px window, it had five, most for faces far smaller)
SEARCH_FACE_PX = 90


@dataclass
class FaceFrame:
    """One frame's face. ``ok`` False: no face was found (box, landmarks, quality None), or its alignment
    is below ``faces.quality.MIN_QUALITY`` (box, landmarks and quality kept; no aligned crop)."""

    frame: int
    box: Box | None
    landmarks: np.ndarray | None    # (68, 2) float32, frame pixels
    aligned: np.ndarray | None      # (size, size, 3) uint8 BGR
    ok: bool
    tracked: bool = False           # landmarks came from tracking, not from a detection on this frame
    quality: AlignmentQuality | None = None
    tentative: bool = False         # a face started here: the next frame's detection confirms it (module doc)


class FaceProcessor:
    """The §4.2 face stages for one face per frame, shared by ``hac-prepare``, training and runtime.

    The face followed is the detection continuing the previous frame's face (overlapping it, or near it at a
    similar size), else the largest that may start a face (``pick``; ``new_face_score``: the detector's
    ``FaceDetector.new_face_score`` when None), tentative until the next frame confirms it (module doc).
    """

    def __init__(self, detector: str | FaceDetector = DEFAULT_DETECTOR, aligner: str | FaceAligner = "sequence",
                 size: int = 224, detect_every: int = 1, landmarks: LandmarkPredictor | None = None,
                 max_track_residual: float = 0.12, max_track_scale_change: float = 0.2, local_search: bool = True,
                 local_threshold: float = -0.5, new_face_score: float | None = None):
        if detect_every < 1:
            raise HacError(f"detect_every must be >= 1, got {detect_every}")
        if new_face_score is not None and isinstance(detector, FaceDetector):
            raise HacError("new_face_score goes to the detector when one is given (make_detector(..., new_face_score=))")
        self.detector = make_detector(detector, new_face_score=new_face_score)  # None: the detector's own
        self.aligner = make_aligner(aligner, size)
        self.landmarks = landmarks or LandmarkPredictor()
        self.size = self.aligner.size
        self.detect_every = detect_every
        self.max_track_residual = max_track_residual
        self.max_track_scale_change = max_track_scale_change
        self.local_search = local_search
        self.local_threshold = local_threshold
        self._last: np.ndarray | None = None
        self._since_detect = 0
        self._photo = False
        self._tentative = False  # the face followed started on the previous frame and is not yet confirmed
        self._had_reference = False  # the sequence aligner had its reference before the tentative face
        #: detections of this clip under ``new_face_score`` on frames where no face was followed (a tentative
        #: face's weak re-detection too): none started
        self.weak_detections = 0
        #: faces of this clip that the next frame's detection did not find again: given out as no face
        self.unconfirmed = 0

    # ---- single-frame steps -------------------------------------------------------------------------------------
    def detect(self, bgr: np.ndarray) -> list[Box]:
        """All face boxes of the frame, largest first."""
        return self.detector.detect(bgr)

    def detect_scored(self, bgr: np.ndarray) -> list[tuple[Box, float | None]]:
        """All faces of the frame as ``(box, score)``, largest first."""
        return self.detector.detect_scored(bgr)

    def landmarks_for(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        """68 landmarks ``(68, 2)`` float32 of the face in ``box``."""
        return self.landmarks.predict(bgr, box)

    def track(self, bgr: np.ndarray, previous: np.ndarray) -> tuple[Box, np.ndarray] | None:
        """Follow a face from its previous landmarks: ``(box, landmarks)``, or None when it is lost.

        The box is re-derived from the previous landmarks; with ``local_search`` (default) dlib
        HOG then looks for the face in a window ``1 + 2 × SEARCH_MARGIN`` times its size, scaled so
        the face is ~``SEARCH_FACE_PX`` px (~1.8 ms), and its box replaces the derived one. The predictor always answers, even on a
        blank frame, so this search is what notices a face gone, and the fresh box keeps the
        landmarks from drifting. Lost also: the box left the frame, the stable points (eye
        corners, nose) moved by more than ``max_track_residual`` inter-ocular distances beyond
        a similarity transform, or the scale changed by more than ``max_track_scale_change``.
        """
        h, w = bgr.shape[:2]
        box = box_from_landmarks(previous)
        x, y, bw, bh = box
        inside = max(0, min(x + bw, w) - max(x, 0)) * max(0, min(y + bh, h) - max(y, 0))
        if inside < 0.6 * bw * bh:
            return None
        if self.local_search:
            box = self.search_near(bgr, box)
            if box is None:
                return None
        lm = self.landmarks.predict(bgr, box)
        m = similarity_transform(previous[STABLE], lm[STABLE])
        moved = previous[STABLE] @ m[:, :2].T + m[:, 2]
        iod = max(interocular(lm), 1.0)
        residual = float(np.sqrt(((moved - lm[STABLE]) ** 2).sum(1)).max()) / iod
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if residual > self.max_track_residual or abs(scale - 1.0) > self.max_track_scale_change:
            return None
        return (box if self.local_search else box_from_landmarks(lm)), lm

    def search_near(self, bgr: np.ndarray, box: Box, margin: float = SEARCH_MARGIN) -> Box | None:
        """dlib HOG's best box overlapping ``box`` in a window ``margin`` of its size wider on each side, or None."""
        import cv2

        from hac_runtime.faces.detectors import frontal_face_detector

        x, y, w, h = box
        if w < 8 or h < 8:
            return None
        s = SEARCH_FACE_PX / w
        m = margin
        x0, y0 = max(0, int(x - m * w)), max(0, int(y - m * h))
        x1, y1 = min(bgr.shape[1], int(x + (1 + m) * w)), min(bgr.shape[0], int(y + (1 + m) * h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        roi = _gray(bgr)[y0:y1, x0:x1]
        roi = cv2.resize(roi, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                         interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        rects, scores, _ = frontal_face_detector().run(roi, 0, self.local_threshold)
        target = ((x - x0) * s, (y - y0) * s, w * s, h * s)
        found = [((r.left(), r.top(), r.width(), r.height()), sc) for r, sc in zip(rects, scores)]
        found = [(b, sc) for b, sc in found if iou(b, target) > 0.3]
        if not found:
            return None
        (bx, by, bw, bh), _ = max(found, key=lambda f: f[1])
        return round(x0 + bx / s), round(y0 + by / s), round(bw / s), round(bh / s)

    @staticmethod
    def continuing(boxes: list[Box], previous: np.ndarray | None) -> int | None:
        """The index of the box that continues the face of the ``previous`` landmarks (``boxes.continuation``:
        overlap, or a near centre at a similar size, as the many-face tracker matches), or None."""
        if previous is None or not boxes:
            return None
        prev = box_from_landmarks(previous)
        score, best = max((continuation(prev, b), j) for j, b in enumerate(boxes))
        return best if score > 0 else None

    @staticmethod
    def pick(boxes: list[Box], previous: np.ndarray | None = None, may_start: list[bool] | None = None) -> Box | None:
        """The face to follow: the one continuing the previous frame's face (``continuing``), else the largest
        of those that may start a face (``may_start``, default all: a weak detection only continues one).

        Keeps a clip on its face when a larger false detection (a badge, a pattern) appears.
        """
        j = FaceProcessor.continuing(boxes, previous)
        if j is not None:
            return boxes[j]
        return next((b for j, b in enumerate(boxes) if may_start is None or may_start[j]), None)

    def align(self, bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned face crop (BGR uint8) with this processor's aligner."""
        return self.aligner.align(bgr, landmarks)

    @staticmethod
    def align_assessed(aligner: FaceAligner, bgr: np.ndarray, landmarks: np.ndarray
                       ) -> tuple[np.ndarray, AlignmentQuality]:
        """The crop of ``aligner`` and its quality (``faces.quality``). A sequence aligner whose reference
        would come from a bad frame is reset, so the clip's first *good* frame sets it (§4.2)."""
        matrix, quality = assessed_matrix(aligner, landmarks, lambda m: assess(bgr, landmarks, m, aligner.size))
        return warp_face(bgr, matrix, aligner.size), quality

    # ---- sequences ---------------------------------------------------------------------------------------------
    def reset(self, photo: bool = False) -> None:
        """Forget the tracked face and the sequence reference: the next frame starts a new clip. ``photo``: it
        is one image, with no later frame for a face to start on: every detection may start it."""
        self._last = None
        self._since_detect = 0
        self._photo = photo
        self._tentative = False
        self.weak_detections = 0
        self.unconfirmed = 0
        self.aligner.reset()

    def may_start(self, score: float | None) -> bool:
        """Whether a detection with this score may start a face here (``FaceDetector.new_face_score``; a photo:
        any)."""
        return self._photo or self.detector.may_start(score)

    def _choose(self, detections: list[tuple[Box, float | None]]) -> tuple[Box | None, bool]:
        """The face of a frame the detector looked at, and whether it starts here (module doc): the detection
        continuing the face followed (one confirming a tentative face must be strong), else the largest strong
        one. A tentative face not found again is dropped (``unconfirmed``), with the reference it set."""
        boxes = [b for b, _ in detections]
        strong = [self.may_start(score) for _, score in detections]
        tentative, self._tentative = self._tentative, False
        may_continue = [j for j in range(len(boxes)) if strong[j] or not tentative]  # a confirmation: strong ones
        j = self.continuing([boxes[j] for j in may_continue], self._last)
        if j is not None:
            return boxes[may_continue[j]], False
        if tentative:
            self.unconfirmed += 1
            self._last = None
            if not self._had_reference:
                self.aligner.reset()
        box = self.pick(boxes, None, strong)
        if box is None:
            self.weak_detections += len(detections)
            return None, False
        self._tentative = not self._photo
        self._had_reference = getattr(self.aligner, "reference", None) is not None
        return box, self._tentative

    def step(self, index: int, bgr: np.ndarray) -> FaceFrame:
        """Process the next frame of the current sequence (a face started here says ``tentative``: ``process``
        gives it out once the next frame has confirmed it)."""
        gray = _gray(bgr)
        found = None
        tracked = started = False
        if self._last is not None and not self._tentative and self._since_detect < self.detect_every:
            found = self.track(gray, self._last)
            tracked = found is not None
        if found is None:
            box, started = self._choose(self.detector.detect_scored(bgr))
            self._since_detect = 0
            if box is not None:
                found = (box, self.landmarks.predict(gray, box))
        if found is None:
            self._last = None
            return FaceFrame(index, None, None, None, False)
        box, lm = found
        self._last = lm
        self._since_detect += 1
        crop, quality = self.align_assessed(self.aligner, bgr, lm)
        box = tuple(int(v) for v in box)
        if not quality.ok:
            return FaceFrame(index, box, lm, None, False, tracked, quality, started)
        return FaceFrame(index, box, lm, crop, True, tracked, quality, started)

    def process(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[FaceFrame]:
        """One ``FaceFrame`` per ``(index, bgr)`` of one clip (e.g. a ``FrameSource``: one of a single frame is a
        photo, ``media.is_photo``, by the frames it announces), in order; resets first. A tentative face's frame
        comes out once the next frame has decided it: as it is when that frame continues it, else as no face
        (module doc)."""
        from hac_runtime.media import FrameSource, is_photo

        self.reset(photo=isinstance(frames, FrameSource) and is_photo(frames))
        held: FaceFrame | None = None
        for index, bgr in frames:
            ff = self.step(index, bgr)
            if held is not None:
                confirmed = ff.box is not None and not ff.tentative  # the next frame's strong detection of it
                yield replace(held, tentative=False) if confirmed else FaceFrame(held.frame, None, None, None, False)
                held = None
            if ff.tentative:
                held = ff
            else:
                yield ff
        if held is not None:  # no later frame to find it again
            self.unconfirmed += 1
            yield FaceFrame(held.frame, None, None, None, False)
