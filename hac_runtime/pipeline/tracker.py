"""Face tracking by box overlap: stable track ids per face across frames.

Greedy IoU matching (highest overlap first) between the current detections and
the live tracks; unmatched detections open new tracks, tracks unseen for
``max_missed`` frames close. Cheap and adequate when faces are detected on most
frames and move little between them (landmark tracking fills the gaps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hac_runtime.boxes import iou

Box = tuple[float, float, float, float]  # x, y, w, h


@dataclass
class Track:
    id: int
    box: Box
    first_frame: int
    last_frame: int
    missed: int = 0
    hits: int = 1
    data: dict = field(default_factory=dict)


class FaceTracker:
    """Assign a stable integer id to each face box, frame after frame."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 10):
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self._next_id = 0

    def update(self, frame: int, boxes: list[Box]) -> tuple[list[Track], list[Track]]:
        """Match ``boxes`` of ``frame`` to tracks. Returns (tracks for each box in order, tracks closed now)."""
        pairs = sorted(
            ((iou(t.box, b), tid, j) for tid, t in self.tracks.items() for j, b in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for score, tid, j in pairs:
            if score < self.min_iou:
                break
            if tid in used or j in assigned:
                continue
            t = self.tracks[tid]
            t.box, t.last_frame, t.missed = tuple(boxes[j]), frame, 0
            t.hits += 1
            assigned[j] = t
            used.add(tid)
        for j, b in enumerate(boxes):
            if j not in assigned:
                t = Track(self._next_id, tuple(b), frame, frame)
                self._next_id += 1
                self.tracks[t.id] = t
                assigned[j] = t
                used.add(t.id)
        closed = []
        for tid in list(self.tracks):
            if tid not in used:
                t = self.tracks[tid]
                t.missed += 1
                if t.missed > self.max_missed:
                    closed.append(self.tracks.pop(tid))
        return [assigned[j] for j in range(len(boxes))], closed

    def close_all(self) -> list[Track]:
        closed = list(self.tracks.values())
        self.tracks.clear()
        return closed
