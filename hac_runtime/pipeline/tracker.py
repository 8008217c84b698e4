"""Face tracking by box overlap: stable track ids per face across frames.

Greedy matching (best first) between the current detections and the live
tracks, by box overlap (IoU ≥ ``min_iou``), else — a face that moved fast — by
centre distance within ``max_shift`` box widths at a similar size (sides within
``max_scale``×); unmatched strong detections open new tracks (a weak one, under
``FaceDetector.new_face_score``, only continues a track), tracks unseen for
``max_missed`` frames close. Cheap and adequate when faces are detected on most
frames (landmark tracking fills the gaps).

A new track is tentative until a later detection finds it again with a strong score
(ByteTrack's activation; ``MultiFaceStage`` detects on the frame after a birth): the
first detection that looks at a frame after its birth without doing so closes it. A
false box that scores high on one frame (the astronaut's name badge, once in 250) so
never becomes a face.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hac_runtime.boxes import MAX_SCALE, MAX_SHIFT, MIN_IOU, Box, continuation



@dataclass
class Track:
    id: int
    box: Box
    first_frame: int
    last_frame: int
    missed: int = 0
    hits: int = 1
    data: dict = field(default_factory=dict)
    confirmed: bool = False  #: found again by a strong detection after the frame it started on (module doc)


def unconfirmed_note(count: int) -> str:
    """The start of the line that says a source's face tracks all ended tentative (module doc)."""
    return f"{count} face track(s) not found again by a later detection (a false box, or a face seen too briefly)"


class FaceTracker:
    """Assign a stable integer id to each face box, frame after frame."""

    def __init__(self, min_iou: float = MIN_IOU, max_missed: int = 10, max_shift: float = MAX_SHIFT,
                 max_scale: float = MAX_SCALE):
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.max_shift, self.max_scale = max_shift, max_scale
        self.tracks: dict[int, Track] = {}
        self._next_id = 0

    def update(self, frame: int, boxes: list[Box], strong: list[bool] | None = None, detected: bool = True
               ) -> tuple[list[Track | None], list[Track]]:
        """Match ``boxes`` of ``frame`` to tracks. Returns (the track of each box in order, tracks closed now).

        ``strong``: per box, a detection on this frame scoring at least the new-face score (default: all):
        only those start a track (a box that matches none and is not strong has None) and confirm one.
        ``detected``: a detection looked at this frame (default): a tentative track it did not confirm
        closes now."""
        pairs = sorted(
            ((self.match(t.box, b), tid, j) for tid, t in self.tracks.items() for j, b in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for score, tid, j in pairs:
            if score <= 0:
                break
            if tid in used or j in assigned:
                continue
            t = self.tracks[tid]
            t.box, t.last_frame, t.missed = tuple(boxes[j]), frame, 0
            t.hits += 1
            t.confirmed = t.confirmed or ((strong is None or strong[j]) and frame > t.first_frame)
            assigned[j] = t
            used.add(tid)
        closed = []
        if detected:  # tentative tracks this detection did not find again end here
            for tid in [tid for tid, t in self.tracks.items() if not t.confirmed and t.first_frame < frame]:
                closed.append(self.tracks.pop(tid))
                used.discard(tid)
            assigned = {j: t for j, t in assigned.items() if t.id in self.tracks}
        for j, b in enumerate(boxes):
            if j not in assigned and (strong is None or strong[j]):
                t = Track(self._next_id, tuple(b), frame, frame)
                self._next_id += 1
                self.tracks[t.id] = t
                assigned[j] = t
                used.add(t.id)
        for tid in list(self.tracks):
            if tid not in used:
                t = self.tracks[tid]
                t.missed += 1
                if t.missed > self.max_missed:
                    closed.append(self.tracks.pop(tid))
        return [assigned.get(j) for j in range(len(boxes))], closed

    def match(self, a: Box, b: Box) -> float:
        """How well box ``b`` continues a track at ``a`` (``boxes.continuation`` with this tracker's limits)."""
        return continuation(a, b, self.min_iou, self.max_shift, self.max_scale)

    def close_all(self) -> list[Track]:
        closed = list(self.tracks.values())
        self.tracks.clear()
        return closed
