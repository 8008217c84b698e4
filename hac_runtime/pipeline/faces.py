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
measured on every frame. A detection scoring under the detector's ``new_face_score``
continues a face already followed but starts none (``weak_detections`` counts those),
and a new track is tentative until a strong detection finds it again on the next frame
(the detector runs there; if it does not, the track closes: ``tracker``); a face says
``confirmed``. A photo (``photo``) has no later frame: there every detection starts a
confirmed face.

With ``background_detection`` (the streaming pipeline's), the full-frame detection
that looks for new faces while every face is being followed runs on a thread of its
own (dlib's HOG releases the GIL: the source thread tracks the next frames on the
other core); a face it finds that no track covers starts a track on the frame where
the result is taken: ``detect_every`` frames after the frame it searched, so within
2 × ``detect_every`` frames of entering, and on the same frame on every run (a video's
results do not depend on how fast the threads ran). Every followed face's frontal
score is measured again on that frame, as on a detection frame. A lost track, or no
track at all, still runs the detector on the frame itself.
"""
from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from hac_runtime.boxes import iou
from hac_runtime.faces import FaceProcessor, make_aligner
from hac_runtime.faces.align import warp_face
from hac_runtime.faces.detectors import _gray
from hac_runtime.faces.quality import AlignmentQuality, assess, assessed_matrix, frontal_score
from hac_runtime.pipeline.tracker import FaceTracker, Track

#: a background detection's new face is searched for again on the frame its result is taken, this share of its
#: size beyond its box on each side (the box is ``detect_every`` frames old)
RELOCATE_MARGIN = 0.5


@dataclass
class TrackedFace:
    track: int
    box: tuple
    aligned_rgb: object  # (S, S, 3) uint8: NumPy, or a torch tensor on the warper's device; None when ``not ok``
    landmarks: np.ndarray | None = None  # (68, 2) frame pixels
    quality: AlignmentQuality | None = None
    tracked: bool = False  # followed from the previous frame's landmarks, not detected on this one
    confirmed: bool = False  # its track was found again by a strong detection (a tentative one may yet close)

    @property
    def ok(self) -> bool:
        return self.aligned_rgb is not None


class MultiFaceStage:
    """Per source: ``step(index, bgr)`` → (faces on this frame with track ids, tracks that ended)."""

    def __init__(self, processor: FaceProcessor, aligner: str = "sequence", size: int = 224, detect_every: int = 1,
                 tracker: FaceTracker | None = None, warper=None, background_detection: bool = False,
                 photo: bool = False):
        self.processor = processor
        self.photo = photo  #: one image: no later frame for a face to start on, so every detection may start one
        self.warper = warper  # a pipeline.gpu.TorchFaceWarper: align on its device instead of with OpenCV
        self.aligner, self.size = aligner, size
        self.detect_every = max(1, detect_every)
        self.tracker = tracker or FaceTracker()
        self._since_detect = self.detect_every
        self.seconds: dict[str, float] = defaultdict(float)  # per stage: detect, track, landmarks, align
        self._background = ThreadPoolExecutor(1, "hac-detect") if background_detection and detect_every > 1 else None
        self._pending: Future | None = None  # the background detection in flight
        #: detections that scored under the detector's new_face_score and continued no face (none started)
        self.weak_detections = 0

    def _detect_timed(self, bgr: np.ndarray) -> list:
        t0 = time.perf_counter()
        detections = self.processor.detect_scored(bgr)
        self.seconds["detect"] += time.perf_counter() - t0
        return detections

    def _new_faces(self, bgr: np.ndarray, gray: np.ndarray, followed: list, wait: bool) -> tuple[list, list[bool]]:
        """Faces of the background detection, taken when ``wait`` (always ``detect_every`` frames after it was
        asked for, never earlier: the results of a video do not depend on how fast the threads ran), that no
        followed face covers: each found again on this frame near where it was (the result is some frames
        old), with its landmarks. Only a detection that may start a track (``FaceDetector.new_face_score``)
        is a new face. Also, per followed face, whether it counts as tracked (False on the frame a result
        came back: its frontal score is measured again, as on a detection frame). A new detection is started
        when one is due, unless a new face was found: the next frame detects on this thread to confirm it."""
        found, tracked = [], [True] * len(followed)
        if self._pending is not None and wait:
            detections, self._pending = self._pending.result(), None
            tracked = [False] * len(followed)
            t0 = time.perf_counter()
            may_start = self._may_start
            for b, score in detections:
                if any(iou(b, f[0]) >= 0.3 for f in followed + found):
                    continue
                if not may_start(score):
                    self.weak_detections += 1
                    continue
                # where that face is on this frame: it moved for detect_every frames since, hence the wider window
                here = self.processor.search_near(gray, b, margin=RELOCATE_MARGIN)
                if here is not None and all(iou(here, f[0]) < 0.3 for f in followed + found):
                    found.append((here, self.processor.landmarks_for(gray, here)))
            self.seconds["landmarks"] += time.perf_counter() - t0
        if not found and self._pending is None and self._since_detect >= self.detect_every:
            self._since_detect = 0
            self._pending = self._background.submit(self._detect_timed, np.array(self._for_detector(bgr, gray)))
        return found, tracked

    def _may_start(self, score: float | None) -> bool:
        return self.photo or self.processor.detector.may_start(score)

    def _wait_pending(self) -> None:
        """The detector is about to run here: the background one must have finished (one user at a time)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _for_detector(self, bgr: np.ndarray, gray: np.ndarray) -> np.ndarray:
        return gray if self.processor.detector.reads_gray else bgr

    def _found(self, bgr: np.ndarray, gray: np.ndarray
               ) -> tuple[list[tuple[tuple, np.ndarray]], list[bool], list[bool], bool]:
        """(box, landmarks) of every face (landmarks None for a detection on this frame: ``step`` predicts
        them for those that belong to a track); for each whether it was tracked rather than detected, and
        whether a strong detection found it here (only those start or confirm a track:
        ``FaceDetector.new_face_score``); and whether a detection looked at this frame."""
        live = [t for t in self.tracker.tracks.values() if t.missed == 0 and "landmarks" in t.data]
        clock = time.perf_counter
        # a tentative track is confirmed or ended by a detection on the frame after it started (one more
        # detection per new face; a short clip's faces are not left tentative)
        tentative = any(not t.confirmed for t in self.tracker.tracks.values())
        if live and not tentative and (self._background is not None or self._since_detect < self.detect_every):
            t0 = clock()
            followed = [self.processor.track(gray, t.data["landmarks"]) for t in live]
            self.seconds["track"] += clock() - t0
            if all(f is not None for f in followed):
                self._since_detect += 1
                if self._background is None:
                    return followed, [True] * len(followed), [False] * len(followed), False
                # a result is taken detect_every frames after it was asked for: a face that enters is found
                # within 2 × that, and on the same frame on every run
                new, tracked = self._new_faces(bgr, gray, followed, wait=self._since_detect >= self.detect_every)
                # followed faces confirm nothing (no track here is tentative); new ones are strong detections
                return followed + new, tracked + [False] * len(new), [False] * len(followed) + [True] * len(new), False
        self._wait_pending()
        self._since_detect = 1
        detections = self._detect_timed(self._for_detector(bgr, gray))
        found = [(box, None) for box, _ in detections]  # landmarks once matched (``step``): a weak one needs none
        return found, [False] * len(found), [self._may_start(score) for _, score in detections], True

    def _quality(self, t: Track, gray: np.ndarray, lm: np.ndarray, matrix: np.ndarray, tracked: bool
                 ) -> AlignmentQuality:
        t0 = time.perf_counter()
        if not tracked or "frontal" not in t.data:
            t.data["frontal"] = frontal_score(gray, lm)
        quality = assess(gray, lm, matrix, self.size, frontal=t.data["frontal"])
        self.seconds["quality"] += time.perf_counter() - t0
        return quality

    def step(self, index: int, bgr: np.ndarray) -> tuple[list[TrackedFace], list[Track]]:
        gray = _gray(bgr)  # once a frame: the search, the landmarks and the frontal score read intensities only
        found, tracked_flags, strong, detected = self._found(bgr, gray)
        tracks, closed = self.tracker.update(index, [tuple(float(v) for v in box) for box, _ in found], strong,
                                             detected)
        faces = []
        frame_t = self.warper.upload(bgr) if self.warper is not None and any(tracks) else None
        for t, (box, lm), tracked in zip(tracks, found, tracked_flags):
            if t is None:  # a weak detection that continues no face
                self.weak_detections += 1
                continue
            t.confirmed = t.confirmed or self.photo  # a photo has no later frame to confirm a face on
            if lm is None:
                t0 = time.perf_counter()
                lm = self.processor.landmarks_for(gray, box)
                self.seconds["landmarks"] += time.perf_counter() - t0
            t.data["landmarks"] = lm
            aligner = t.data.get("aligner")
            if aligner is None:
                aligner = t.data["aligner"] = make_aligner(self.aligner, self.size)
            t0, judged = time.perf_counter(), self.seconds["quality"]
            matrix, quality = assessed_matrix(aligner, lm, lambda m: self._quality(t, gray, lm, m, tracked))
            self.seconds["align"] += time.perf_counter() - t0 - (self.seconds["quality"] - judged)
            rgb = None
            if quality.ok:
                t0 = time.perf_counter()
                if frame_t is not None:
                    rgb = self.warper.warp(frame_t, matrix)
                else:
                    rgb = np.ascontiguousarray(warp_face(bgr, matrix, self.size)[..., ::-1])
                self.seconds["align"] += time.perf_counter() - t0
            faces.append(TrackedFace(t.id, tuple(int(v) for v in box), rgb, lm, quality, tracked, t.confirmed))
        return faces, closed

    def close(self) -> None:
        """End the background detection (idempotent; also on a source's error paths); a detection in flight
        (~20 ms with HOG) is waited for and dropped."""
        background, self._background, self._pending = self._background, None, None
        if background is not None:
            background.shutdown(wait=True, cancel_futures=False)

    def finish(self) -> list[Track]:
        self.close()
        return self.tracker.close_all()
