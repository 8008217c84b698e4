"""Several faces per frame: detect every N frames, landmark tracking between, stable track ids, per-track alignment.

Built from the single-frame steps of ``FaceProcessor`` (§4.2). Each track keeps
its own ``SequenceAligner`` (the paper's reference is the track's first good
frame) and its last landmarks; between detections every live track is followed
from its landmarks, and a frame where a track is lost runs the detector instead.
Every face gets its alignment quality (``faces.quality``); one below the threshold
keeps its box and track but no aligned crop, so no clip is fed with it. The
frontal score, the costly part (~1.5 ms), is measured on frames where the detector
ran and kept for the track's tracked frames (tracking itself confirms a frontal
face with a local HOG search); the crop's share outside the frame and the yaw are
measured on every frame.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from hac_runtime.faces import FaceProcessor, make_aligner
from hac_runtime.faces.align import warp_face
from hac_runtime.faces.quality import AlignmentQuality, assess, assessed_matrix, frontal_score
from hac_runtime.pipeline.tracker import FaceTracker, Track


@dataclass
class TrackedFace:
    track: int
    box: tuple
    aligned_rgb: object  # (S, S, 3) uint8: NumPy, or a torch tensor on the warper's device; None when ``not ok``
    landmarks: np.ndarray | None = None  # (68, 2) frame pixels
    quality: AlignmentQuality | None = None
    tracked: bool = False  # followed from the previous frame's landmarks, not detected on this one

    @property
    def ok(self) -> bool:
        return self.aligned_rgb is not None


class MultiFaceStage:
    """Per source: ``step(index, bgr)`` → (faces on this frame with track ids, tracks that ended)."""

    def __init__(self, processor: FaceProcessor, aligner: str = "sequence", size: int = 224, detect_every: int = 1,
                 tracker: FaceTracker | None = None, warper=None):
        self.processor = processor
        self.warper = warper  # a pipeline.gpu.TorchFaceWarper: align on its device instead of with OpenCV
        self.aligner, self.size = aligner, size
        self.detect_every = max(1, detect_every)
        self.tracker = tracker or FaceTracker()
        self._since_detect = self.detect_every
        self.seconds: dict[str, float] = defaultdict(float)  # per stage: detect, track, landmarks, align

    def _found(self, bgr: np.ndarray) -> tuple[list[tuple[tuple, np.ndarray]], bool]:
        """(box, landmarks) of every face, and whether they were tracked rather than detected."""
        live = [t for t in self.tracker.tracks.values() if t.missed == 0 and "landmarks" in t.data]
        clock = time.perf_counter
        if live and self._since_detect < self.detect_every:
            t0 = clock()
            followed = [self.processor.track(bgr, t.data["landmarks"]) for t in live]
            self.seconds["track"] += clock() - t0
            if all(f is not None for f in followed):
                self._since_detect += 1
                return followed, True
        self._since_detect = 1
        t0 = clock()
        boxes = self.processor.detect(bgr)
        t1 = clock()
        found = [(box, self.processor.landmarks_for(bgr, box)) for box in boxes]
        self.seconds["detect"] += t1 - t0
        self.seconds["landmarks"] += clock() - t1
        return found, False

    def _quality(self, t: Track, bgr: np.ndarray, lm: np.ndarray, matrix: np.ndarray, tracked: bool
                 ) -> AlignmentQuality:
        t0 = time.perf_counter()
        if not tracked or "frontal" not in t.data:
            t.data["frontal"] = frontal_score(bgr, lm)
        quality = assess(bgr, lm, matrix, self.size, frontal=t.data["frontal"])
        self.seconds["quality"] += time.perf_counter() - t0
        return quality

    def step(self, index: int, bgr: np.ndarray) -> tuple[list[TrackedFace], list[Track]]:
        found, tracked = self._found(bgr)
        tracks, closed = self.tracker.update(index, [tuple(float(v) for v in box) for box, _ in found])
        faces = []
        frame_t = self.warper.upload(bgr) if self.warper is not None and found else None
        for t, (box, lm) in zip(tracks, found):
            t.data["landmarks"] = lm
            aligner = t.data.get("aligner")
            if aligner is None:
                aligner = t.data["aligner"] = make_aligner(self.aligner, self.size)
            t0, judged = time.perf_counter(), self.seconds["quality"]
            matrix, quality = assessed_matrix(aligner, lm, lambda m: self._quality(t, bgr, lm, m, tracked))
            self.seconds["align"] += time.perf_counter() - t0 - (self.seconds["quality"] - judged)
            rgb = None
            if quality.ok:
                t0 = time.perf_counter()
                if frame_t is not None:
                    rgb = self.warper.warp(frame_t, matrix)
                else:
                    rgb = np.ascontiguousarray(warp_face(bgr, matrix, self.size)[..., ::-1])
                self.seconds["align"] += time.perf_counter() - t0
            faces.append(TrackedFace(t.id, tuple(int(v) for v in box), rgb, lm, quality, tracked))
        return faces, closed

    def finish(self) -> list[Track]:
        return self.tracker.close_all()
