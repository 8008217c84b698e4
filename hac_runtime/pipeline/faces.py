"""Several faces per frame: detect every N frames, landmark tracking between, stable track ids, per-track alignment.

Built from the single-frame steps of ``FaceProcessor`` (§4.2). Each track keeps
its own ``SequenceAligner`` (the paper's reference is the track's first good
frame) and its last landmarks; between detections every live track is followed
from its landmarks, and a frame where a track is lost runs the detector instead.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from hac_runtime.faces import FaceProcessor, make_aligner
from hac_runtime.pipeline.tracker import FaceTracker, Track


@dataclass
class TrackedFace:
    track: int
    box: tuple
    aligned_rgb: object  # (S, S, 3) uint8: NumPy, or a torch tensor on the warper's device


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

    def _found(self, bgr: np.ndarray) -> list[tuple[tuple, np.ndarray]]:
        live = [t for t in self.tracker.tracks.values() if t.missed == 0 and "landmarks" in t.data]
        clock = time.perf_counter
        if live and self._since_detect < self.detect_every:
            t0 = clock()
            followed = [self.processor.track(bgr, t.data["landmarks"]) for t in live]
            self.seconds["track"] += clock() - t0
            if all(f is not None for f in followed):
                self._since_detect += 1
                return followed
        self._since_detect = 1
        t0 = clock()
        boxes = self.processor.detect(bgr)
        t1 = clock()
        found = [(box, self.processor.landmarks_for(bgr, box)) for box in boxes]
        self.seconds["detect"] += t1 - t0
        self.seconds["landmarks"] += clock() - t1
        return found

    def step(self, index: int, bgr: np.ndarray) -> tuple[list[TrackedFace], list[Track]]:
        found = self._found(bgr)
        tracks, closed = self.tracker.update(index, [tuple(float(v) for v in box) for box, _ in found])
        faces = []
        frame_t = self.warper.upload(bgr) if self.warper is not None and found else None
        for t, (box, lm) in zip(tracks, found):
            t.data["landmarks"] = lm
            aligner = t.data.get("aligner")
            if aligner is None:
                aligner = t.data["aligner"] = make_aligner(self.aligner, self.size)
            t0 = time.perf_counter()
            if frame_t is not None:
                rgb = self.warper.warp(frame_t, aligner.matrix(lm))
            else:
                rgb = np.ascontiguousarray(aligner.align(bgr, lm)[..., ::-1])
            self.seconds["align"] += time.perf_counter() - t0
            faces.append(TrackedFace(t.id, tuple(int(v) for v in box), rgb))
        return faces, closed

    def finish(self) -> list[Track]:
        return self.tracker.close_all()
