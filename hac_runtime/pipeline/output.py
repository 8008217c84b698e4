"""Results out: JSON lines (CONTRACTS.md "Results line") and annotated video."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hac_runtime.atomic import check_output_file, disk_is_full, is_special_file, os_reason
from hac_runtime.boxes import intersection
from hac_runtime.errors import HacError


class JsonLinesWriter:
    """One JSON object per line (stdout when ``path`` is None), flushed per line.

    A file is written as ``.<name>.<random>.partial`` beside ``path`` and renamed onto it by
    ``close(commit=True)``: an existing results file is replaced only by a run that got going, never
    emptied by one that failed at the start, and a reader never sees a half-written file. A path that is not
    a regular file (``/dev/null``, a FIFO: ``atomic.is_special_file``) is written into line by line instead."""

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self._f = sys.stdout if self.path is None else None
        self._tmp: Path | None = None
        self._special = self.path is not None and is_special_file(self.path)
        if self.path is not None:
            check_output_file(self.path, "results")

    def _open(self):
        import tempfile

        if self._special:
            try:
                self._f = open(self.path, "w")
            except OSError as e:
                raise HacError(f"{self.path}: cannot write results ({os_reason(e)})") from None
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        except OSError as e:
            raise HacError(f"{self.path}: cannot write results ({os_reason(e)})") from None
        self._tmp = Path(tmp)
        self._f = os.fdopen(fd, "w")

    def write(self, result: dict) -> None:
        if self._f is None:
            self._open()
        self._f.write(json.dumps(result) + "\n")
        self._f.flush()

    def close(self, commit: bool = True) -> None:
        """Finish the file: renamed into place when ``commit`` (an empty one too), else removed."""
        if self.path is None:
            return
        if self._f is None and commit:
            self._open()
        if self._f is None:
            return
        f, self._f = self._f, None
        try:
            f.flush()
            if not self._special:  # a FIFO or device has no disk to sync, and nothing to rename
                os.fsync(f.fileno())
        finally:
            f.close()
        if self._special:
            return
        if commit:
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


BOX_BGR = (0, 200, 255)  #: face boxes, label backgrounds and bars
ALBUM_FPS = 1.0  #: frame rate of an annotated video of a folder of separate photos (``media.is_album``)
H264_SUFFIXES = (".mp4", ".mov", ".mkv")  #: written as H.264 (yuv420p) through PyAV: plays in browsers


class Decisions:
    """The decision shown at a frame for a track: the latest result already made by then (its clip ended at
    or before that frame), else None — a decision is never painted before it was made. Results are indexed
    per track by ``frame_end`` (bisect), and at equal ends a later-listed result wins."""

    def __init__(self, results: list[dict]):
        import bisect

        self._bisect = bisect.bisect_right
        by_track: dict[int, list] = {}
        for order, r in enumerate(results):
            by_track.setdefault(r["track"], []).append((r["frame_end"], order, r))
        for v in by_track.values():
            v.sort(key=lambda x: x[:2])
        self._ends = {t: [e for e, _, _ in v] for t, v in by_track.items()}
        self._results = {t: [r for _, _, r in v] for t, v in by_track.items()}

    def at(self, track: int, frame: int) -> dict | None:
        ends = self._ends.get(track)
        if not ends:
            return None
        i = self._bisect(ends, frame)
        return self._results[track][i - 1] if i else None


def _text_size(text: str, scale: float) -> tuple[int, int, int, int]:
    """(w, h, pad, text height) of ``_text``'s filled label for ``text`` at ``scale``."""
    import cv2

    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, int(3 * scale))
    return tw + 2 * pad, th + base + 2 * pad, pad, th


def _inside(x, y, w, h, frame_shape) -> tuple[int, int]:
    """``(x, y)`` moved so a ``w`` × ``h`` rectangle there lies inside the frame (where it fits)."""
    fh, fw = frame_shape[:2]
    return int(min(max(x, 0), max(0, fw - w))), int(min(max(y, 0), max(0, fh - h)))


def _text(frame, text: str, org, scale: float, fg=(0, 0, 0), bg=BOX_BGR) -> tuple[int, int]:
    """``text`` on a filled background with its top-left at ``org``, moved inside the frame; returns (w, h)."""
    import cv2

    w, h, pad, th = _text_size(text, scale)
    x, y = _inside(org[0], org[1], w, h, frame.shape)
    cv2.rectangle(frame, (x, y), (x + w, y + h), bg, -1)
    cv2.putText(frame, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, fg,
                max(1, int(round(scale * 2))), cv2.LINE_AA)
    return w, h


def _least_covering(spots, size, frame_shape, *avoid) -> tuple[tuple[int, int], tuple]:
    """Of ``spots`` (each moved inside the frame), the one whose ``size`` rectangle covers least of the first
    group of rectangles in ``avoid``, then of the next; among equals one that needed no moving, then the
    earlier. Returns it and its key (the area covered of each group first)."""
    fh, fw = frame_shape[:2]
    w, h = size
    best = None
    for i, (x, y) in enumerate(spots):
        fits = x >= 0 and x + w <= fw and y >= 0 and y + h <= fh
        x, y = _inside(x, y, w, h, frame_shape)
        key = (*(sum(intersection((x, y, w, h), r) for r in group) for group in avoid), not fits, i)
        if best is None or key < best[0]:
            best = (key, (x, y))
    return best[1], best[0]


def panel_place(box, size, frame_shape, avoid=(), own=()) -> tuple[int, int]:
    """Where a ``size`` (w, h) panel goes for a face ``box``: of the spots right of the box, left, below and
    above (below and above its label ``own`` too; each moved inside the frame), the one covering least of
    ``avoid`` (other faces' boxes and labels, panels already drawn), then of the face, then of its label
    (drawn over the panel); among equals, one that needed no moving, then the earlier in that order."""
    top = min(r[1] for r in (box, *own))  # below and above the box and its label
    bottom = max(r[1] + r[3] for r in (box, *own))
    pw, ph = size
    x, y, bw, _ = box
    spots = [(x + bw + 6, y), (x - 6 - pw, y), (x, bottom + 6), (x, top - 6 - ph)]
    return _least_covering(spots, size, frame_shape, avoid, (box,), own)[0]


def _label(track: int, result: dict | None) -> str:
    return f"#{track} " + (f"{result['label']} {result['score']:.2f}" if result else "...")


def _scale(frame_shape) -> float:
    return max(0.4, min(1.2, frame_shape[0] / 720))


def _panel_size(result: dict, scale: float) -> tuple[int, int]:
    import cv2

    small = scale * 0.8
    row = int(cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, small, 1)[0][1] * 1.9) + 2
    name_w = max(cv2.getTextSize(c, cv2.FONT_HERSHEY_SIMPLEX, small, 1)[0][0] for c in result["probs"])
    num_w = cv2.getTextSize("100%", cv2.FONT_HERSHEY_SIMPLEX, small, 1)[0][0]
    return name_w + int(70 * scale) + num_w + 16, row * len(result["probs"]) + 6


def _draw_panel(frame: np.ndarray, result: dict, rect, scale: float) -> None:
    """Every class's probability as a bar and a number, on a dark translucent panel at ``rect``."""
    import cv2

    px, py, pw, ph = rect
    probs = list(result["probs"].items())
    small = scale * 0.8
    row = (ph - 6) // len(probs)
    name_w = max(cv2.getTextSize(c, cv2.FONT_HERSHEY_SIMPLEX, small, 1)[0][0] for c, _ in probs)
    bar_w = int(70 * scale)
    overlay = frame.copy()
    cv2.rectangle(overlay, (px, py), (px + pw, py + ph), (30, 30, 30), -1)
    cv2.addWeighted(overlay, 0.65, frame, 0.35, 0, dst=frame)
    for i, (c, v) in enumerate(probs):
        yy = py + 4 + i * row
        mid = yy + row // 2
        best = c == result["label"]
        cv2.putText(frame, c, (px + 4, mid + row // 4), cv2.FONT_HERSHEY_SIMPLEX, small,
                    BOX_BGR if best else (235, 235, 235), 1, cv2.LINE_AA)
        bx = px + 8 + name_w
        cv2.rectangle(frame, (bx, yy + 3), (bx + bar_w, yy + row - 3), (90, 90, 90), 1)
        cv2.rectangle(frame, (bx, yy + 3), (bx + int(bar_w * float(v)), yy + row - 3), BOX_BGR, -1)
        cv2.putText(frame, f"{100 * float(v):.0f}%", (bx + bar_w + 4, mid + row // 4), cv2.FONT_HERSHEY_SIMPLEX,
                    small, (235, 235, 235), 1, cv2.LINE_AA)


@dataclass
class FaceLayout:
    """Where one face's drawing goes: its box, its ``#track label score`` label and its panel of every class's
    probability (None: no decision yet, or no room for it clear of the other faces)."""

    track: int
    box: tuple
    label: tuple  # (x, y, w, h)
    panel: tuple | None
    label_scale: float = 1.0  #: the label's text size: smaller than the frame's where a crowd leaves no room


#: a label that overlaps an earlier one at the frame's text size is tried at these shares of it
LABEL_SHRINK = (1.0, 0.8, 0.65, 0.5)


def _place_label(text: str, box, scale: float, frame_shape, placed: list, faces: list) -> tuple[tuple, float]:
    """A label's rectangle and text scale: above the box, else below, each also right-aligned to the box,
    clear of the labels ``placed`` before (and of the other ``faces`` where a spot allows), at the largest
    ``LABEL_SHRINK`` size where one is; else the smallest size's least overlapping spot."""
    x, y, bw, bh = box
    for share in LABEL_SHRINK:
        w, h, _, _ = _text_size(text, scale * share)
        gap = int(4 * scale)
        spots = [(x, y - h - gap), (x, y + bh + gap), (x + bw - w, y - h - gap), (x + bw - w, y + bh + gap)]
        (lx, ly), key = _least_covering(spots, (w, h), frame_shape, placed, faces)
        if key[0] == 0:
            break
    return (lx, ly, w, h), scale * share


def layout_faces(frame_shape, faces: list[tuple[int, tuple, dict | None]]) -> list[FaceLayout]:
    """The frame's drawing, all faces at once, so no face's writing hides another face or its decision.

    Each label sits above its box or below it, clear of the labels placed before (``_place_label``: smaller
    where a crowd leaves no room), inside the frame. Each panel goes beside its box (``panel_place``), clear of
    every other face's box and label and of the panels placed before; where no spot is clear of those (a
    crowd), the face keeps its label only. A panel may cover its own face or label when nothing else is free
    (a close-up filling the frame, a face at the frame's edge): labels are drawn last."""
    scale = _scale(frame_shape)
    boxes = [tuple(int(v) for v in box) for _, box, _ in faces]
    labels, label_scales = [], []
    for i, ((track, _, result), box) in enumerate(zip(faces, boxes)):
        rect, size = _place_label(_label(track, result), box, scale, frame_shape, labels, boxes[:i] + boxes[i + 1:])
        labels.append(rect)
        label_scales.append(size)
    placed: list[FaceLayout] = []
    for i, ((track, _, result), box) in enumerate(zip(faces, boxes)):
        panel = None
        if result:
            size = _panel_size(result, scale)
            others = ([b for j, b in enumerate(boxes) if j != i] + [r for j, r in enumerate(labels) if j != i]
                      + [p.panel for p in placed if p.panel])
            px, py = panel_place(box, size, frame_shape, others, own=[labels[i]])
            rect = (px, py, *size)
            if all(intersection(rect, r) == 0 for r in others):  # its own label is drawn over it
                panel = rect
        placed.append(FaceLayout(track, box, labels[i], panel, label_scales[i]))
    return placed


def draw_faces(frame: np.ndarray, faces: list[tuple[int, tuple, dict | None]]) -> list[FaceLayout]:
    """Draw every face of the frame (``layout_faces``): boxes, then panels, then the labels on top."""
    import cv2

    scale = _scale(frame.shape)
    layout = layout_faces(frame.shape, faces)
    for f in layout:
        x, y, bw, bh = f.box
        cv2.rectangle(frame, (x, y), (x + bw, y + bh), BOX_BGR, max(2, int(2 * scale)))
    for f, (_, _, result) in zip(layout, faces):
        if f.panel is not None:
            _draw_panel(frame, result, f.panel, scale)
    for f, (track, _, result) in zip(layout, faces):
        _text(frame, _label(track, result), f.label[:2], f.label_scale)
    return layout


class _H264Writer:
    """H.264 (libx264, yuv420p) through PyAV; OpenCV cannot write H.264 here. Odd sizes lose a last row/column."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        from fractions import Fraction

        import av

        self.av = av
        moov_first = {"movflags": "+faststart"} if Path(path).suffix.lower() in (".mp4", ".mov") else {}
        self.container = av.open(str(path), "w", options=moov_first)  # a browser can start playing at once
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.w, self.h = width - width % 2, height - height % 2
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, bgr: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr[:self.h, :self.w]), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def release(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()


def letterbox(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """``bgr`` scaled to fit ``width`` × ``height`` with its aspect kept, centred on black: the video's size is its
    first frame's, and a folder's images may differ (an album's photos; OpenCV's writer drops a frame of another
    size, PyAV's stretches it)."""
    import cv2

    h, w = bgr.shape[:2]
    if (w, h) == (width, height):
        return bgr
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


class _OpenCvWriter:
    def __init__(self, path: Path, fps: float, width: int, height: int, fourcc: str = "MJPG"):
        import cv2

        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not self.writer.isOpened():
            raise HacError(f"{path}: OpenCV cannot write {fourcc} video")

    def write(self, bgr: np.ndarray) -> None:
        self.writer.write(bgr)

    def release(self) -> None:
        self.writer.release()


def check_video_suffix(path) -> Path:
    """``path`` if its suffix names a video format ``annotate_video`` writes, else a one-line HacError."""
    path = Path(path)
    if path.suffix.lower() not in (*H264_SUFFIXES, ".avi"):
        raise HacError(f"{path}: annotated video must be .mp4, .avi, .mov or .mkv")
    return path


def annotate_video(source, out_path, boxes: dict, results: list[dict], fps: float | None = None) -> Path:
    """Re-decode ``source`` and draw every face (``draw_faces``) with the decision made by then.

    ``.mp4``/``.mov``/``.mkv``: H.264 through PyAV (plays in a browser); ``.avi``: MJPG through OpenCV.
    Written to a temporary file, read back, then renamed: a failed write leaves nothing."""
    from hac_runtime.atomic import atomic_path
    from hac_runtime.media import is_album, open_source

    out_path = check_video_suffix(out_path)
    suffix = out_path.suffix.lower()
    src = open_source(source)
    # a folder of separate photos: each shown for a second (at a frame folder's 25 fps a photo was a 40 ms flash)
    fps = src.fps or fps or (ALBUM_FPS if is_album(src) else 25.0)
    decisions = Decisions(results)
    writer, written = None, 0
    with atomic_path(out_path) as tmp:
        tmp_video = tmp.with_suffix(out_path.suffix)
        try:  # whatever fails, the temporary video goes: nothing is left beside the final name
            try:
                for index, bgr in src:
                    frame = np.ascontiguousarray(bgr)
                    if writer is None:
                        size = frame.shape[1], frame.shape[0]
                        writer = (_H264Writer if suffix in H264_SUFFIXES else _OpenCvWriter)(tmp_video, fps, *size)
                    draw_faces(frame, [(track, box, decisions.at(track, index))
                                       for track, box in boxes.get(index, [])])
                    writer.write(letterbox(frame, *size))
                    written += 1
            except HacError:
                raise
            except Exception as e:  # noqa: BLE001 - the encoder's own errors (PyAV: a full disk, a bad size)
                why = "no space left on device" if disk_is_full(tmp_video.parent) else f"{type(e).__name__}: {e}"
                raise HacError(f"{out_path}: cannot write the annotated video ({why}); nothing written") from None
            finally:
                if writer is not None:
                    try:
                        writer.release()
                    except Exception:  # noqa: BLE001 - already failing, or read back below
                        pass
                src.close()
            if writer is None:
                raise HacError(f"{source}: no frame to annotate")
            _check_video(tmp_video, out_path, written)
            tmp_video.replace(tmp)
        finally:
            tmp_video.unlink(missing_ok=True)
    return out_path


def _check_video(path: Path, final: Path, frames: int) -> None:
    """OpenCV's writer fails silently (a full disk leaves a truncated file): read back the frame count."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        got = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    if got < frames:
        why = "no space left on device" if disk_is_full(path.parent) else f"{got} of {frames} frames readable"
        raise HacError(f"{final}: cannot write the annotated video ({why}); nothing written")
