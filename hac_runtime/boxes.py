"""Face boxes ``(x, y, w, h)``: the one box type of the toolkit (detectors give whole pixels, the tracker
smooths them into floats)."""
from __future__ import annotations

Box = tuple[float, float, float, float]  #: x, y, w, h in pixels of the frame


def intersection(a, b) -> float:
    """Shared area of two ``(x, y, w, h)`` boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
