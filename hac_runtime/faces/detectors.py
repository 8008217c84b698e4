"""Face detectors behind one interface: OpenCV Haar cascade (§4.2, the paper's), dlib HOG, dlib CNN (MMOD).

Every detector returns boxes ``(x, y, w, h)`` in frame pixels, largest first, in
one convention: the box of dlib's HOG detector, the one the 68-point landmark
predictor was trained on. Haar and CNN boxes are mapped to it with offsets
measured on real photos (``benchmarks/faces.md``), so landmarks come out the
same whichever detector found the face. Frames larger than ``max_side`` are
detected at reduced size and the boxes scaled back.

Default ``hog``, by measurement (benchmarks/faces.md, 640×480, CPU): the fastest
(~17 ms a frame against Haar's ~54 and CNN's ~1900) and the best recall of the
two fast ones (every face of the moving, dark and ±25°-rolled clips; Haar missed
3–33 %). Faces under ~80 px need ``upsample=1`` (4× the cost); ``cnn`` is for
turned or badly lit faces where time allows (or with ``detect_every``).

A detection starts a new face track only when its score reaches the detector's
``new_face_score`` (ByteTrack's two thresholds); weaker ones only continue a face
already followed. HOG's is 0.5, measured on real photos moving on a canvas
(benchmarks/faces.md): its false boxes (the astronaut's mission patch and name badge)
score 0.00–0.54 (under 0.5 on all but one of 250 frames) and were six of the seven
``hac-run`` results on a video of her, now none; real faces score ≥ 0.5 on 95–100 %
of the frames they are found on (normal, dark ×0.35, rolled ±25°), 80 % for a ~45 px
face, which then starts on a later frame (a far, cut face of the group photo: 15
frames later). A photo has no later frame: there every detection may start a face
(the group photo's 52 px face scores 0.32). Haar has no score and CNN's is not
measured: every one of their detections may start a track.
"""
from __future__ import annotations

import functools
import pickle
import threading

import numpy as np

from hac_runtime.boxes import Box
from hac_runtime.errors import HacError
from hac_runtime.faces.models import CNN_DETECTOR, model_path


DETECTORS = ("hog", "haar", "cnn")
DEFAULT_DETECTOR = "hog"


_THREAD = threading.local()


@functools.lru_cache(maxsize=1)
def _hog_pickled() -> bytes:
    """dlib's HOG frontal-face detector, built once (~0.4 s) and serialised: a thread's copy unpickles in ~2 ms."""
    import dlib

    return pickle.dumps(dlib.get_frontal_face_detector())


def frontal_face_detector():
    """dlib's HOG frontal-face detector of this thread (a copy of the one built per process, the same
    detections): a detector keeps scratch buffers, so two threads never hold the same one."""
    det = getattr(_THREAD, "hog", None)
    if det is None:
        det = _THREAD.hog = pickle.loads(_hog_pickled())
    return det


def load_hog() -> None:
    """Build the process's HOG detector now (a ``Pipeline`` does when it opens), not on a source's first frame."""
    _hog_pickled()


def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


Detection = tuple  #: ``(box, score)``: the box ``(x, y, w, h)`` and the detector's score (None when it has none)


class FaceDetector:
    """Base class: ``detect(bgr)`` → boxes ``(x, y, w, h)``, largest first; ``detect_scored`` with their scores."""

    name = ""
    # (dx, dy, scale): centre shift in box widths and size factor that map this detector's
    # boxes onto dlib HOG's (measured: benchmarks/faces.py --calibrate).
    box_adjust = (0.0, 0.0, 1.0)
    #: frames larger than this are detected at reduced size (per detector: its cost grows with the area)
    default_max_side = 640
    #: it looks at intensities only: the frame's grayscale, when a caller has it, finds the same faces (up to rounding)
    reads_gray = False
    #: a detection starts a new face track only with a score of at least this (None: every detection may;
    #: weaker ones continue a face already followed): the detector's own, unless given to the constructor
    default_new_face_score: float | None = None

    def __init__(self, max_side: int | None = None, upsample: int = 0, new_face_score: float | None = None):
        max_side = max_side or self.default_max_side
        if max_side < 32:
            raise HacError(f"max_side must be >= 32, got {max_side}")
        self.max_side = max_side
        self.upsample = upsample
        self.new_face_score = self.default_new_face_score if new_face_score is None else float(new_face_score)

    def may_start(self, score: float | None) -> bool:
        """Whether a detection with this score may start a new face track (``new_face_score``)."""
        return self.new_face_score is None or score is None or score >= self.new_face_score

    def _detect(self, img: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        """``(x, y, w, h, score)`` of every face in ``img`` (score None when the detector has none)."""
        raise NotImplementedError

    def detect(self, bgr: np.ndarray) -> list[Box]:
        """Faces in a BGR (or grayscale) uint8 frame, largest first."""
        return [box for box, _ in self.detect_scored(bgr)]

    def detect_scored(self, bgr: np.ndarray) -> list[Detection]:
        """``(box, score)`` of every face in a BGR (or grayscale) uint8 frame, largest first."""
        import cv2

        h, w = bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = bgr
        if scale < 1.0:
            img = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        dx, dy, s = self.box_adjust
        boxes = []
        for x, y, bw, bh, score in self._detect(img):
            cx, cy = (x + bw / 2 + dx * bw) / scale, (y + bh / 2 + dy * bw) / scale
            bw, bh = s * bw / scale, s * bh / scale
            boxes.append(((round(cx - bw / 2), round(cy - bh / 2), round(bw), round(bh)), score))
        return sorted(boxes, key=lambda d: d[0][2] * d[0][3], reverse=True)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_side={self.max_side}, upsample={self.upsample}, "
                f"new_face_score={self.new_face_score})")


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade (Viola–Jones AdaBoost, the paper's §4.2) on the equalised gray frame."""

    name = "haar"
    reads_gray = True
    box_adjust = (0.0, 0.10, 0.93)

    def __init__(self, max_side: int | None = None, upsample: int = 0, new_face_score: float | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5, cascade: str = "haarcascade_frontalface_default.xml"):
        import cv2

        super().__init__(max_side, upsample, new_face_score)
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self.cascade.empty():
            raise HacError(f"OpenCV Haar cascade {cascade} not found in {cv2.data.haarcascades}")

    def _detect(self, img):
        import cv2

        gray = cv2.equalizeHist(_gray(img))
        if self.upsample:
            gray = cv2.resize(gray, None, fx=2 ** self.upsample, fy=2 ** self.upsample, interpolation=cv2.INTER_LINEAR)
        f = 2.0 ** -self.upsample
        min_side = max(24, min(gray.shape) // 16)
        found = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(min_side, min_side))
        return [(x * f, y * f, w * f, h * f, None) for x, y, w, h in found]  # detectMultiScale has no score


class HogDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal-face detector (faces from about 50 px; ``upsample=1`` for 25 px).

    Frames up to 1280 px are searched at full size: at 640 a 720p group photo kept 1 of its 6 faces
    (50–120 px wide), at 1280 all 6 (benchmarks/faces.md)."""

    name = "hog"
    default_max_side = 1280
    reads_gray = True
    default_new_face_score = 0.5  # module doc

    def _detect(self, img):  # the calling thread's own detector: a background detection never shares one
        rects, scores, _ = frontal_face_detector().run(np.ascontiguousarray(_gray(img)), self.upsample, 0.0)
        return [(r.left(), r.top(), r.width(), r.height(), float(sc)) for r, sc in zip(rects, scores)]


class CnnDetector(FaceDetector):
    """dlib's CNN (MMOD) face detector: better on turned and badly lit faces, slow on a CPU."""

    name = "cnn"
    box_adjust = (0.03, 0.075, 1.02)

    def __init__(self, max_side: int | None = None, upsample: int = 0, new_face_score: float | None = None):
        import dlib

        super().__init__(max_side, upsample, new_face_score)
        self.detector = dlib.cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR)))

    def _detect(self, img):
        import cv2

        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        found = self.detector(rgb, self.upsample)
        return [(d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height(), float(d.confidence)) for d in found]


def weak_detections_note(count: int, new_face_score: float) -> str:
    """The line that says a source's faces were all too weak to start (``FaceDetector.new_face_score``)."""
    return (f"{count} detection(s) scored under the new-face score {new_face_score:g} and started no face "
            "(--new-face-score lowers it, at the cost of false faces)")


_REGISTRY = {"haar": HaarDetector, "hog": HogDetector, "cnn": CnnDetector}


def make_detector(name: str = DEFAULT_DETECTOR, **options) -> FaceDetector:
    """A face detector by name (``DETECTORS``); ``options`` go to its constructor (``max_side``, ``upsample``…)."""
    if isinstance(name, FaceDetector):
        return name
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise HacError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    return cls(**options)
