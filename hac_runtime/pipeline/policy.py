"""When a face track's buffer becomes a clip to classify, and which frames go in it (§3.1).

* ``SlidingWindow``: live streams — every ``stride`` seconds, the last ``window``
  seconds of the track, k frames sampled by segment centres.
* ``PerTrack``: whole files — one decision per face track, over all its frames,
  when the track ends (the paper's per-video classification).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


from hac_runtime.pipeline.config import DEFAULTS
from hac_runtime.sampling import ClipSampler


@dataclass
class BufferedFace:
    frame: int
    t: float
    face: object  # aligned, (S, S, 3) uint8 RGB: NumPy, or a torch tensor on the GPU
    box: tuple


@dataclass
class ClipRequest:
    source: str
    track: int
    faces: list[BufferedFace]  # the k sampled faces, in order
    frame_start: int
    frame_end: int
    t_start: float
    t_end: float
    box: tuple
    source_index: int = 0  #: position of the source in the run's list (sources may repeat)
    for_drawing: bool = False  #: a running decision for the annotated video, not a result line
    file: str | None = None  #: a folder of separate photos: the photo the clip's face is in (``FolderSource.file_of``)


class TrackBuffer:
    """One track's aligned faces, bounded so memory stays flat on endless streams.

    ``thin=False``: a ring buffer (the oldest face drops out). ``thin=True``: when
    full, every other face is dropped, so the buffer still spans the whole track.
    """

    def __init__(self, maxlen: int, thin: bool = False):
        self.maxlen, self.thin = maxlen, thin
        self.items: deque[BufferedFace] = deque(maxlen=None if thin else maxlen)
        self.next_emit_t: float | None = None  #: sliding windows: when the next clip is due (a stride grid)

    def append(self, item: BufferedFace) -> None:
        if self.thin and len(self.items) >= self.maxlen:
            self.items = deque(list(self.items)[::2])
        self.items.append(item)


def _request(source: str, track: int, items: list[BufferedFace], sampler: ClipSampler) -> ClipRequest:
    picked = [items[i] for i in sampler.indices(len(items))]
    return ClipRequest(source, track, picked, items[0].frame, items[-1].frame, items[0].t, items[-1].t, items[-1].box)


#: seconds: frame times are ``index / fps`` in floating point, so "exactly one stride later" may come out a hair
#: short (29 / 25 - 4 / 25 < 1.0); comparisons allow this much
TIME_EPS = 1e-6


class SlidingWindow:
    """Emit a clip every ``stride`` s over the last ``window`` s of a track (needs ≥ ``min_frames``).

    Clips are due on a grid: the first when the window holds ``min_frames`` faces, then every ``stride``
    seconds after it, each on the first face at or past its time. A due time is not moved by how late that
    face came: emitting a stride after the last clip drifted by up to one face spacing per clip (0.08 s a
    clip with faces 0.12 s apart, ``analyse_every`` 3 at 25 fps: 11 clips in 12 s, not 12). A face more
    than half a stride late (a gap in the track) starts the grid again at it, so the grid holds only while
    faces come less than half a stride apart.
    """

    def __init__(self, k: int, window: float = DEFAULTS.window, stride: float = DEFAULTS.stride,
                 min_frames: int | None = None, max_frames: int = 512):
        self.sampler = ClipSampler(k)
        self.window, self.stride = window, stride
        self.min_frames = min_frames or k
        self.max_frames = max_frames

    def new_buffer(self) -> TrackBuffer:
        return TrackBuffer(self.max_frames)

    def holds(self, fps: float, every: int = 1) -> int:
        """How many faces a window holds on a ``fps`` source analysed every ``every`` frames: those with
        t > now - window, as ``on_face`` keeps them."""
        return math.ceil((self.window - TIME_EPS) * fps / every)

    def max_every(self, fps: float) -> int:
        """The largest ``analyse_every`` whose windows still hold ``min_frames`` faces (at least 1)."""
        every, widest = 1, max(1, math.ceil(self.window * fps))  # beyond it a window holds one face
        while every < widest and self.holds(fps, every + 1) >= self.min_frames:
            every += 1
        return every

    def on_face(self, source: str, track: int, buf: TrackBuffer) -> ClipRequest | None:
        now = buf.items[-1].t
        while len(buf.items) > 1 and buf.items[0].t <= now - self.window + TIME_EPS:  # holds t > now - window
            buf.items.popleft()
        if buf.next_emit_t is not None and now < buf.next_emit_t - TIME_EPS:
            return None
        items = list(buf.items)
        if len(items) < self.min_frames:
            return None
        due = buf.next_emit_t
        # on time, or late by less than half a stride (the faces' spacing): the grid holds; else it restarts here
        on_grid = due is not None and now - due < self.stride / 2
        buf.next_emit_t = (due if on_grid else now) + self.stride
        return _request(source, track, items, self.sampler)

    def on_close(self, source: str, track: int, buf: TrackBuffer) -> ClipRequest | None:
        return None


class PerTrack:
    """One clip per track, over all its frames, when the track ends (keeps ≤ ``max_frames``, evenly thinned)."""

    def __init__(self, k: int, min_frames: int = 1, max_frames: int = 4096):
        self.sampler = ClipSampler(k)
        self.min_frames = min_frames
        self.max_frames = max_frames

    def new_buffer(self) -> TrackBuffer:
        return TrackBuffer(self.max_frames, thin=True)

    def on_face(self, source: str, track: int, buf: TrackBuffer) -> ClipRequest | None:
        return None

    def on_close(self, source: str, track: int, buf: TrackBuffer) -> ClipRequest | None:
        if len(buf.items) < self.min_frames:
            return None
        return _request(source, track, list(buf.items), self.sampler)
