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


#: a box continues a face at another when they overlap this much, else when its centre is within this many box
#: widths at a similar size (sides within this ratio): a face that moved fast between frames
MIN_IOU, MAX_SHIFT, MAX_SCALE = 0.3, 0.75, 1.4


def continuation(a, b, min_iou: float = MIN_IOU, max_shift: float = MAX_SHIFT, max_scale: float = MAX_SCALE) -> float:
    """How well box ``b`` continues a face at ``a``: 1 + IoU when they overlap enough, else in (0, 1) for a
    near centre at a similar size (closer is higher), else 0 (no match)."""
    overlap = iou(a, b)
    if overlap >= min_iou:
        return 1.0 + overlap
    wa, wb = max(a[2], 1.0), max(b[2], 1.0)
    if max(wa, wb) / min(wa, wb) > max_scale:
        return 0.0
    d = ((a[0] + a[2] / 2 - b[0] - b[2] / 2) ** 2 + (a[1] + a[3] / 2 - b[1] - b[3] / 2) ** 2) ** 0.5
    limit = max_shift * (wa + wb) / 2
    return max(0.0, 1.0 - d / limit) * 0.999 if d < limit else 0.0
