"""Results out: JSON lines (CONTRACTS.md "Results line") and annotated video."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from hac_runtime.atomic import check_output_file, disk_is_full, os_reason
from hac_runtime.errors import HacError


class JsonLinesWriter:
    """One JSON object per line (stdout when ``path`` is None), flushed per line.

    A file is written as ``.<name>.<random>.partial`` beside ``path`` and renamed onto it by
    ``close(commit=True)``: an existing results file is replaced only by a run that got going, never
    emptied by one that failed at the start, and a reader never sees a half-written file."""

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self._f = sys.stdout if self.path is None else None
        self._tmp: Path | None = None
        if self.path is not None:
            check_output_file(self.path, "results")

    def _open(self):
        import tempfile

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
            os.fsync(f.fileno())
        finally:
            f.close()
        if commit:
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def _label_at(results: list[dict], track: int, frame: int) -> dict | None:
    """The result covering ``frame`` of ``track`` (the latest window that started before it)."""
    best = None
    for r in results:
        if r["track"] == track and r["frame_start"] <= frame and (best is None or r["frame_start"] >= best["frame_start"]):
            best = r
    return best


def annotate_video(source, out_path, boxes: dict, results: list[dict], fps: float | None = None) -> Path:
    """Re-decode ``source`` and draw box, track id, label and probability bars per face; MJPG/mp4v by suffix."""
    import cv2

    from hac_runtime.atomic import atomic_path
    from hac_runtime.media import open_source

    out_path = Path(out_path)
    fourcc = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}.get(out_path.suffix.lower())
    if fourcc is None:
        raise HacError(f"{out_path}: annotated video must be .mp4, .avi, .mov or .mkv")
    src = open_source(source)
    fps = src.fps or fps or 25.0
    writer, written = None, 0
    with atomic_path(out_path) as tmp:
        tmp_video = tmp.with_suffix(out_path.suffix)
        try:  # whatever fails, the temporary video goes: nothing is left beside the final name
            try:
                for index, bgr in src:
                    frame = np.ascontiguousarray(bgr)
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
                        if not writer.isOpened():
                            raise HacError(f"{out_path}: OpenCV cannot write {fourcc} video")
                    for track, (x, y, bw, bh) in boxes.get(index, []):
                        r = _label_at(results, track, index)
                        cv2.rectangle(frame, (x, y), (x + bw, y + bh), (0, 200, 255), 2)
                        text = f"#{track}" + (f" {r['label']} {r['score']:.2f}" if r else "")
                        cv2.putText(frame, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 200, 255), 1, cv2.LINE_AA)
                        if r:
                            for i, (c, p) in enumerate(r["probs"].items()):
                                yy = y + bh + 12 + 11 * i
                                cv2.rectangle(frame, (x, yy - 8), (x + int(60 * p), yy), (0, 200, 255), -1)
                                cv2.putText(frame, c[:9], (x + 64, yy), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
                    writer.write(frame)
                    written += 1
            finally:
                if writer is not None:
                    writer.release()
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
