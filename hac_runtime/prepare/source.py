"""One source's clips: its faces detected, aligned and written (every face its own clip, or the largest)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from hac_runtime.clips import face_name
from hac_runtime.errors import HacError, HacFailure
from hac_runtime.faces.detectors import weak_detections_note
from hac_runtime.faces.quality import low_quality_note
from hac_runtime.media import is_photo, open_source
from hac_runtime.pipeline.tracker import unconfirmed_note
from hac_runtime.prepare.commit import (FACES, FORMAT, PARTIAL, _commit, _remove_others, _seal, done_group,
                                        done_marker, fingerprint, settings_of, skipped_summary)
from hac_runtime.prepare.summary import ClipSummary


FACE_MODES = ("all", "largest")


# faces="all": a track is a clip when it has good faces on >= this share of the source's frames (a photo: its one
# frame). Shorter tracks are mostly false detections that come and go (the HOG detector's on the astronaut's mission
# patch: on 1-2 frames at a time); one that persists longer becomes a clip like a face.
MIN_TRACK_SHARE = 0.25


def face_record(clip: str, ff, file: str | None = None) -> dict:
    """One ``faces.jsonl`` line for a ``FaceFrame`` (``file``: the image it came from, where there is one)."""
    found = ff.landmarks is not None  # a face of low quality keeps its box and landmarks, with ok false
    rec = {"clip": clip, "frame": int(ff.frame), "box": list(ff.box) if found else None,
           "landmarks": np.round(ff.landmarks.astype(np.float64), 1).tolist() if found else None, "ok": bool(ff.ok)}
    if ff.quality is not None:
        rec["quality"], rec["yaw"] = ff.quality.quality, ff.quality.yaw
    if file is not None:
        rec["file"] = file
    return rec


def prepare_clip(source, out_dir, processor, name: str | None = None, on_frames=None) -> ClipSummary:
    """Prepare one clip into ``out_dir`` (skipped when already done with the same source and settings).

    ``source``: anything ``open_source`` takes. ``processor``: a ``FaceProcessor``. Raises HacError when
    the source cannot be read at all. ``on_frames(n)`` is called as frames are done (progress).
    """
    import cv2

    out_dir = Path(out_dir)
    name = name or out_dir.name
    fp, settings = fingerprint(source), settings_of(processor)
    marker = done_marker(out_dir, fp, settings)
    if marker:
        return skipped_summary(marker)
    src = open_source(source)
    tmp = out_dir.parent / f".{out_dir.name}{PARTIAL}-{os.getpid()}"  # this process's own: no other writes here
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary = ClipSummary(name, fp["path"])
    pending = found = 0
    try:
        with src, open(tmp / FACES, "w") as jl:
            for ff in processor.process(src):
                if ff.ok:
                    png = tmp / face_name(ff.frame)
                    if not cv2.imwrite(str(png), ff.aligned):
                        raise HacFailure(f"{png}: cannot write the aligned face")
                    summary.faces += 1
                summary.frames += 1
                found += ff.box is not None  # ok or below the alignment quality
                jl.write(json.dumps(face_record(name, ff, src.file_of(ff.frame))) + "\n")
                pending += 1
                if on_frames and pending >= 8:
                    on_frames(pending)
                    pending = 0
            summary.warnings = list(src.warnings)
            if summary.faces == 0:  # why: faces all below quality, else not found again, else all too weak
                if found:
                    summary.warnings.append(f"{name}: {low_quality_note(found)}: no face kept")
                elif processor.unconfirmed:
                    summary.warnings.append(f"{name}: {unconfirmed_note(processor.unconfirmed)}: no face kept")
                elif processor.weak_detections:
                    summary.warnings.append(weak_detections_note(processor.weak_detections,
                                                                 processor.detector.new_face_score))
        if on_frames and pending:
            on_frames(pending)
        m = {"format": FORMAT, "clip": name, "source": fp, "settings": settings, "frames": summary.frames,
             "faces": summary.faces, "warnings": summary.warnings}
        _seal(tmp, m)
        _commit(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def prepare_source(source, out: Path, name: str, processor, faces: str = "all", on_frames=None) -> list[ClipSummary]:
    """Prepare one source into ``out``: one clip (``faces="largest"``, ``OUT/<name>``) or one per face track
    (``"all"``: ``OUT/<name>`` when it has one face, else ``OUT/<name>.face0``…). Skipped when done."""
    if faces == "largest":
        clip = prepare_clip(source, out / name, processor, name, on_frames)
        _remove_others(out, name, [name])
        return [clip]
    if faces not in FACE_MODES:
        raise HacError(f"unknown faces mode {faces!r}; choose one of {', '.join(FACE_MODES)}")
    fp, settings = fingerprint(source), settings_of(processor, faces)
    done = done_group(out, name, fp, settings)
    if done is not None:
        return [skipped_summary(m) for m in done]
    return _prepare_tracks(source, out, name, processor, fp, settings, on_frames)


def _prepare_tracks(source, out: Path, name: str, processor, fp: dict, settings: dict, on_frames) -> list[ClipSummary]:
    """faces="all": every face track its own clip (module doc), all written under one partial folder first."""
    import cv2

    from hac_runtime.pipeline.faces import MultiFaceStage

    src = open_source(source)
    tmp = out / f".{name}{PARTIAL}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stage = MultiFaceStage(processor, processor.aligner.name, processor.size, processor.detect_every,
                           photo=is_photo(src))
    tracks: dict[int, dict] = {}  # id → {"lines": {frame: record}, "good": n, "first": frame, "x": box x}
    frames: list[tuple[int, str | None]] = []
    pending = 0
    try:
        with src:
            for index, bgr in src:
                file = src.file_of(index)
                frames.append((index, file))
                found, _ = stage.step(index, bgr)
                for f in found:
                    t = tracks.setdefault(f.track, {"lines": {}, "good": 0, "first": index, "x": f.box[0]})
                    t["confirmed"] = f.confirmed  # found again by a later strong detection (pipeline.tracker)
                    folder = tmp / f"t{f.track}"
                    if f.ok:
                        folder.mkdir(exist_ok=True)
                        png = folder / face_name(index)
                        crop = np.ascontiguousarray(np.asarray(f.aligned_rgb)[..., ::-1])
                        if not cv2.imwrite(str(png), crop):
                            raise HacFailure(f"{png}: cannot write the aligned face")
                        t["good"] += 1
                    t["lines"][index] = f
                pending += 1
                if on_frames and pending >= 8:
                    on_frames(pending)
                    pending = 0
            warnings = list(src.warnings)
            if not tracks and stage.weak_detections:
                warnings.append(weak_detections_note(stage.weak_detections, processor.detector.new_face_score))
        if on_frames and pending:
            on_frames(pending)
        need = max(1, int(np.ceil(MIN_TRACK_SHARE * len(frames))))
        kept = [i for i, t in tracks.items() if t["good"] >= need and t["confirmed"]]
        short = sum(t["confirmed"] and t["good"] < need for t in tracks.values())
        if short:
            which = (f"no well-aligned face in its {len(frames)} frame(s)" if need == 1 else
                     f"well-aligned faces on fewer than {need} of {len(frames)} frames")
            warnings.append(f"{name}: {short} face track(s) with {which} not kept as clips")
        if tracks and not any(t["confirmed"] for t in tracks.values()):
            warnings.append(f"{name}: {unconfirmed_note(len(tracks))}: not kept as clips")
        if not kept and tracks:  # no clip of a face: the source's clip lists its best track's faces, all ok false
            best = max(tracks, key=lambda i: (tracks[i]["confirmed"], tracks[i]["good"], len(tracks[i]["lines"])))
            shutil.rmtree(tmp / f"t{best}", ignore_errors=True)
            tracks[best]["good"] = 0
            tracks[best]["lines"] = {i: replace(f, aligned_rgb=None) for i, f in tracks[best]["lines"].items()}
            kept = [best]
        kept.sort(key=lambda i: (tracks[i]["first"], tracks[i]["x"]))
        names = [name] if len(kept) <= 1 else [f"{name}.face{j}" for j in range(len(kept))]
        summaries = []
        for clip, tid in zip(names, kept or [None]):
            folder = tmp / (f"t{tid}" if tid is not None else "none")
            folder.mkdir(exist_ok=True)
            lines = tracks[tid]["lines"] if tid is not None else {}
            summary = ClipSummary(clip, fp["path"], len(frames), tracks[tid]["good"] if tid is not None else 0,
                                  list(warnings))
            with open(folder / FACES, "w") as jl:
                for index, file in frames:
                    jl.write(json.dumps(face_record(clip, _frame_of(index, lines.get(index)), file)) + "\n")
            summaries.append(summary)
        for clip, tid, summary in zip(names, kept or [None], summaries):
            folder = tmp / (f"t{tid}" if tid is not None else "none")
            m = {"format": FORMAT, "clip": clip, "source": fp, "settings": settings, "frames": summary.frames,
                 "faces": summary.faces, "warnings": summary.warnings, "base": name, "group": names}
            _seal(folder, m)
        _remove_others(out, name, names)
        for clip, tid in zip(names, kept or [None]):
            _commit(tmp / (f"t{tid}" if tid is not None else "none"), out / clip)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summaries


def _frame_of(index: int, face):
    """A ``FaceFrame``-shaped record of a tracked face (or of its absence) for ``face_record``."""
    from types import SimpleNamespace

    if face is None:
        return SimpleNamespace(frame=index, box=None, landmarks=None, ok=False, quality=None)
    return SimpleNamespace(frame=index, box=face.box, landmarks=face.landmarks, ok=face.ok, quality=face.quality)
