"""How ``Pipeline`` and ``hac-run`` turn faces into clips: one typed config whose defaults are written here
once (the CLI's options, ``run_sources`` and ``Pipeline`` all read them)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hac_runtime.errors import HacError

POLICIES = ("track", "window")  #: track: one clip per face track; window: sliding windows (live sources)


@dataclass(frozen=True)
class PipelineConfig:
    detector: str | None = None  #: None: the faces package's default detector
    detect_every: int = 5  #: run the detector every N analysed frames, track landmarks in between
    #: a detection starts a new face track only with at least this score; weaker ones continue a face already
    #: followed (None: the detector's own, ``FaceDetector.new_face_score``: HOG's 0.5)
    new_face_score: float | None = None
    #: look at faces on every N-th decoded frame only (1: all); the frames between are decoded and counted, not
    #: analysed: up to N× less face work per camera (many cameras on a CPU box), faces at fps / N frames a second
    #: (a clip's k frames are sampled from those; tracking follows a face across N-frame steps)
    analyse_every: int = 1
    policy: str | None = None  #: None: ``track`` for files and folders, ``window`` when a source is live
    window: float = 2.0  #: sliding window, seconds
    stride: float = 1.0  #: between windows, seconds
    max_batch: int = 8  #: clips per engine call (capped by the engine's own largest batch)
    max_wait: float = 0.02  #: seconds a partial batch waits for more clips
    fps: float = 25.0  #: frame rate of sources that do not say theirs
    timeout: float | None = None  #: stream URLs and Triton: seconds to open and per read (None: media's default)
    #: look for new faces on a thread of its own while the faces already there are followed, when there are
    #: fewer sources than cores (1.2× the frames/s of one stream, benchmarks/pipeline.md); a face that enters
    #: is then found up to 2 × detect_every frames later than by a detection on the frame itself (False)
    background_detection: bool = True

    def __post_init__(self):
        if self.policy is not None and self.policy not in POLICIES:
            raise HacError(f"unknown clip policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        for name in ("detect_every", "analyse_every", "max_batch"):
            if int(getattr(self, name)) < 1:
                raise HacError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("window", "stride", "fps"):
            if not float(getattr(self, name)) > 0:
                raise HacError(f"{name} must be > 0, got {getattr(self, name)}")

    def replace(self, **changes) -> PipelineConfig:
        """This config with ``changes``; a change given as None keeps the current value."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULTS = PipelineConfig()
