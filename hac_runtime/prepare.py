"""``hac-prepare``: aligned faces from videos, frame folders and images (§4.2), resumable and parallel.

Output (CONTRACTS.md): ``OUT/<clip>/NNNNN.png`` aligned faces, NNNNN the source
frame index (a frame without a face leaves a gap, indices never shift), and
``OUT/faces.jsonl``, one line per frame of every prepared clip in OUT:
``clip, frame, box [x,y,w,h], landmarks [[x,y]×68], ok``. Each clip folder also
holds its own ``faces.jsonl`` and a ``.done.json`` marker (source fingerprint,
settings, counts, warnings). A clip is written to ``OUT/.<clip>.partial-<pid>``
(one folder per writing process), made durable (fsync) and only then given its
marker and renamed into place, so an interrupted or killed run leaves no half
clip, and the next run skips every clip already done with the same source and
settings and whose faces are all there; partial folders of dead processes are
removed. Worker processes die with the run (SIGTERM, SIGKILL or a crash of the
parent): they never write into OUT after it.

Every face of a source is its own clip (``faces="all"``, the default): faces are
tracked across frames (``pipeline.faces.MultiFaceStage``, the runtime's), and each
track with frames enough becomes ``<clip>.face0``, ``<clip>.face1``… in order of
appearance (a source with one face keeps the plain ``<clip>``); ``faces="largest"``
follows one face per source, the one overlapping the previous frame's, else the
largest (training's dataset cache: a labelled clip is one subject). A face whose
alignment quality (``faces.quality``) is below the threshold is listed in
``faces.jsonl`` with its box, landmarks, ``quality`` and ``ok: false``, and gets no PNG.

Clip names come from the input paths: the file or folder name, with as many
parent folders as needed to tell inputs apart; a source already prepared in OUT
keeps its name. A folder holding images is one clip when its names are a
frame sequence (one prefix + a number: ``00012.png``, ``frame012.jpg``); a folder
of other photos gives one clip per photo (``media.is_frame_sequence``). A folder
without images is searched for videos and image folders (a dataset tree).

Clips run in parallel worker processes (spawned, so scripts calling ``prepare``
need the usual ``if __name__ == "__main__":`` guard) when there are enough frames
to pay for starting them (``auto_workers``). Bad inputs are reported and skipped;
``HacError`` only when no input could be used.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hac_runtime.atomic import atomic_path, check_output_dir
from hac_runtime.errors import HacError, HacFailure, program
from hac_runtime.faces.detectors import DEFAULT_DETECTOR
from hac_runtime.faces.quality import MIN_QUALITY
from hac_runtime.media import (LIST_EXTS, VIDEO_EXTS, image_files, is_frame_sequence, natural_key, open_source,
                               read_image_list)

FORMAT = "hac-prepare/1"
MARKER = ".done.json"
FACES = "faces.jsonl"
PARTIAL = ".partial"
PARTIAL_RE = re.compile(r"^\.(?P<clip>.+)\.partial(?:-(?P<pid>\d+))?$")
FACE_MODES = ("all", "largest")
# faces="all": a track is a clip when it has good faces on >= this share of the source's frames (a photo: its one
# frame). Shorter tracks are mostly false detections that come and go (the HOG detector's on the astronaut's mission
# patch: on 1-2 frames at a time); one that persists longer becomes a clip like a face.
MIN_TRACK_SHARE = 0.25


@dataclass
class ClipSummary:
    """What one clip gave: frames read, frames with a face, warnings; ``skipped`` when done by an earlier run."""

    name: str
    source: str
    frames: int = 0
    faces: int = 0
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def no_face(self) -> int:
        return self.frames - self.faces


@dataclass
class PrepareSummary:
    """The run: clips prepared or skipped, inputs that failed ``(input, reason)``, totals."""

    out: Path
    clips: list[ClipSummary] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1

    def _per_source(self) -> list[ClipSummary]:
        """One clip per source (a multi-face source's clips share its frames)."""
        return list({c.source: c for c in self.clips}.values())

    frames = property(lambda self: sum(c.frames for c in self._per_source()))
    faces = property(lambda self: sum(c.faces for c in self.clips))
    no_face = property(lambda self: sum(c.no_face for c in self.clips))  # per clip: frames without its face
    skipped = property(lambda self: sum(c.skipped for c in self.clips))

    def render(self, warnings: bool = True) -> str:
        """A few lines for people: the totals, the failed inputs, and (``warnings``) the clips' warnings."""
        done = f" ({self.skipped} already done)" if self.skipped else ""
        n, sources = len(self.clips), len(self._per_source())
        of = f" of {sources} source{'s' if sources != 1 else ''}" if sources != n else ""
        line = f"{n} clip{'s' if n != 1 else ''}{of}{done} in {self.out}: {self.frames} frames, {self.faces} faces found"
        if sources == n:
            line += f", {self.no_face} frames without a face"
        lines = [line]
        if self.failed:
            lines.append(f"{len(self.failed)} input(s) could not be used:")
            lines += [f"  {why}" for _, why in self.failed]
        notes = list(dict.fromkeys(w for c in self.clips if not c.skipped for w in c.warnings)) if warnings else []
        if notes:
            lines.append("warnings:")
            lines += [f"  {w}" for w in notes]
        return "\n".join(lines)


# ---- one clip -------------------------------------------------------------------------------------------------------
def settings_of(processor, faces: str = "largest") -> dict:
    """The settings that make prepared faces differ: a clip prepared with others is redone."""
    d = processor.detector
    return {"detector": d.name, "max_side": d.max_side, "upsample": d.upsample, "aligner": processor.aligner.name,
            "size": processor.size, "detect_every": processor.detect_every, "min_quality": MIN_QUALITY,
            "faces": faces}


def fingerprint(source) -> dict:
    """Identity of a source: resolved path, size and modification time (for folders: of their images)."""
    stream = isinstance(source, str) and ("://" in source or (source.isdigit() and not Path(source).exists()))
    if stream or not isinstance(source, (str, os.PathLike)):
        return {"path": str(getattr(source, "path", source))}
    p = Path(source).resolve()
    try:
        st = p.stat()
    except OSError:
        raise HacError(f"{source}: no such file or folder") from None
    if p.is_dir():
        files = image_files(p)
        return {"path": str(p), "files": len(files), "mtime_ns": max((f.lstat().st_mtime_ns for f in files), default=0)}
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_marker(clip_dir: Path) -> dict | None:
    try:
        m = json.loads((clip_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def finished_marker(clip_dir: Path) -> dict | None:
    """The marker of a clip hac-prepare finished and whose faces are all on disk, else None."""
    m = read_marker(clip_dir)
    if not m:
        return None
    try:
        pngs = sum(1 for f in clip_dir.iterdir() if f.suffix == ".png" and f.is_file())
    except OSError:
        return None
    return m if pngs == m.get("faces") and (clip_dir / FACES).is_file() else None


def done_marker(clip_dir: Path, source_fp: dict, settings: dict) -> dict | None:
    """The marker of a clip finished with this source and these settings whose faces are all on disk, else None."""
    m = finished_marker(clip_dir)
    return m if m and m.get("source") == source_fp and m.get("settings") == settings else None


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk (before its marker says it is done)."""
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie — killed, not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_partials(out: Path) -> int:
    """Remove the partial clip folders of processes that are gone (a killed run's leftovers); return how many."""
    n = 0
    if not out.is_dir():
        return 0
    for d in out.iterdir():
        m = PARTIAL_RE.match(d.name)
        if m and d.is_dir() and (m["pid"] is None or not _alive(int(m["pid"]))):
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


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
    pending = 0
    try:
        with src, open(tmp / FACES, "w") as jl:
            for ff in processor.process(src):
                if ff.ok:
                    png = tmp / f"{ff.frame:05d}.png"
                    if not cv2.imwrite(str(png), ff.aligned):
                        raise HacFailure(f"{png}: cannot write the aligned face")
                    summary.faces += 1
                summary.frames += 1
                jl.write(json.dumps(face_record(name, ff, src.file_of(ff.frame))) + "\n")
                pending += 1
                if on_frames and pending >= 8:
                    on_frames(pending)
                    pending = 0
            summary.warnings = list(src.warnings)
        if on_frames and pending:
            on_frames(pending)
        m = {"format": FORMAT, "clip": name, "source": fp, "settings": settings, "frames": summary.frames,
             "faces": summary.faces, "warnings": summary.warnings}
        _seal(tmp, m)
        _commit(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _seal(folder: Path, marker: dict) -> None:
    """Write a finished clip folder's marker, durably, once its faces are on disk (fsync) before it says so."""
    _fsync_tree(folder)
    with open(folder / MARKER, "w") as f:
        f.write(json.dumps(marker, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _commit(tmp: Path, out_dir: Path) -> None:
    """Put the finished clip folder in place; an older version is replaced only now."""
    old = out_dir.parent / f".{out_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    _fsync_dir(out_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


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


def skipped_summary(marker: dict) -> ClipSummary:
    """The summary of a clip an earlier run finished, from its marker."""
    return ClipSummary(marker["clip"], marker["source"]["path"], marker["frames"], marker["faces"],
                       marker.get("warnings", []), skipped=True)


def group_of(out: Path, name: str) -> list[Path]:
    """The clip folders a source named ``name`` left in ``out``: ``name`` and ``name.faceN``."""
    pattern = re.compile(re.escape(name) + r"\.face\d+")
    try:
        return sorted([d for d in out.iterdir() if d.is_dir() and (d.name == name or pattern.fullmatch(d.name))],
                      key=lambda d: natural_key(d.name))
    except OSError:
        return []


def done_group(out: Path, name: str, source_fp: dict, settings: dict) -> list[dict] | None:
    """The markers of every clip of source ``name`` when all are finished with this source and settings, else None."""
    for first in (out / name, out / f"{name}.face0"):
        m = done_marker(first, source_fp, settings)
        if m:
            group = m.get("group") or [m["clip"]]
            markers = [done_marker(out / g, source_fp, settings) for g in group]
            return markers if all(markers) else None
    return None


def _prepare_tracks(source, out: Path, name: str, processor, fp: dict, settings: dict, on_frames) -> list[ClipSummary]:
    """faces="all": every face track its own clip (module doc), all written under one partial folder first."""
    import cv2

    from hac_runtime.pipeline.faces import MultiFaceStage

    src = open_source(source)
    tmp = out / f".{name}{PARTIAL}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stage = MultiFaceStage(processor, processor.aligner.name, processor.size, processor.detect_every)
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
                    folder = tmp / f"t{f.track}"
                    if f.ok:
                        folder.mkdir(exist_ok=True)
                        png = folder / f"{index:05d}.png"
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
        if on_frames and pending:
            on_frames(pending)
        need = max(1, int(np.ceil(MIN_TRACK_SHARE * len(frames))))
        kept = [i for i, t in tracks.items() if t["good"] >= need]
        if len(kept) < len(tracks):
            warnings.append(f"{name}: {len(tracks) - len(kept)} face track(s) with good faces on fewer than {need} "
                            f"of {len(frames)} frames not kept as clips")
        if not kept and tracks:  # no clip of a face: the source's clip lists its best track's faces, all ok false
            best = max(tracks, key=lambda i: (tracks[i]["good"], len(tracks[i]["lines"])))
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


def _remove_others(out: Path, name: str, names: list[str]) -> None:
    """Remove the clips an earlier run made of source ``name`` (other faces mode) that are not ``names``."""
    for old in group_of(out, name):
        if old.name not in names:
            shutil.rmtree(old, ignore_errors=True)


def _frame_of(index: int, face):
    """A ``FaceFrame``-shaped record of a tracked face (or of its absence) for ``face_record``."""
    from types import SimpleNamespace

    if face is None:
        return SimpleNamespace(frame=index, box=None, landmarks=None, ok=False, quality=None)
    return SimpleNamespace(frame=index, box=face.box, landmarks=face.landmarks, ok=face.ok, quality=face.quality)


# ---- inputs → named clips ------------------------------------------------------------------------------------------
def collect_clips(inputs, folders_are_clips: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Clip sources from the inputs (files; image folders; dataset trees searched), and ``(input, reason)`` failures.

    A folder of images is one clip when it is a frame sequence (``media.is_frame_sequence``), else each
    photo is a clip of its own; ``folders_are_clips``: every image folder is one clip (a dataset's clips)."""
    clips, failed, seen = [], [], set()

    def add(p: Path):
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            clips.append(p)

    def add_folder(p: Path, files: list[Path]):
        if folders_are_clips or is_frame_sequence(files):
            add(p)
        else:
            for f in files:
                add(f)

    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            failed.append((str(inp), f"{inp}: no such file or folder"))
        elif p.is_file():
            add(p)
        elif not p.is_dir():
            failed.append((str(inp), f"{inp}: not a regular file or folder"))
        elif files := image_files(p):
            add_folder(p, files)
        else:
            found = _search(p)
            if not found:
                failed.append((str(inp), f"{inp}: no images or videos found in this folder"))
            for f in found:
                if f.is_dir():
                    add_folder(f, image_files(f))
                else:
                    add(f)
    return clips, failed


def _search(folder: Path, visited: set | None = None) -> list[Path]:
    """Videos and image folders under ``folder``, in natural order; each real folder is visited once
    (links back to a parent, or two links to one folder, would otherwise recurse without end)."""
    visited = set() if visited is None else visited
    real = folder.resolve()
    if real in visited:
        return []
    visited.add(real)
    found = []
    try:
        entries = sorted(folder.iterdir(), key=lambda q: natural_key(q.name))
    except OSError:
        return []
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_dir():
            found += [p] if image_files(p) else _search(p, visited)
        elif p.suffix.lower() in VIDEO_EXTS and p.is_file():
            found.append(p)
    return found


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def clip_names(paths: list[Path], reserved: dict[str, str] | None = None) -> list[str]:
    """Unique, stable names: the last path part (no extension), plus parents where names would collide.

    ``reserved`` maps names already in use to their source path; a path listed there keeps its name.
    """
    reserved = reserved or {}
    owner = {src: nm for nm, src in reserved.items()}
    parts = []
    for p in paths:
        r = p.resolve()
        parts.append([q for q in r.parent.parts if q not in ("/", r.anchor)] + [r.stem if r.is_file() else r.name])
    keys = [str(p.resolve()) for p in paths]
    seen: Counter = Counter()
    for part in parts:  # same folder, same stem (clip.mp4, clip.avi): the later ones become clip-2, clip-3…
        key = tuple(part)
        seen[key] += 1
        if seen[key] > 1:
            part[-1] = f"{part[-1]}-{seen[key]}"
    depth = [1] * len(paths)
    fixed = {i: owner[k] for i, k in enumerate(keys) if k in owner}
    while True:
        names = [fixed.get(i) or _safe("_".join(parts[i][-depth[i]:])) for i in range(len(paths))]
        counts = Counter(names)
        clash = [i for i, n in enumerate(names) if i not in fixed
                 and (counts[n] > 1 or (n in reserved and reserved[n] != keys[i]))]
        grow = [i for i in clash if depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    used = set(reserved) | {n for i, n in enumerate(names) if i not in clash}
    for i in clash:  # same path parts (e.g. clip.mp4 and clip.avi side by side): the first keeps it, then -2, -3…
        if names[i] in used:
            k = 2
            while f"{names[i]}-{k}" in used:
                k += 1
            names[i] = f"{names[i]}-{k}"
        used.add(names[i])
    return names


def existing_clips(out: Path) -> dict[str, str]:
    """Finished clips in ``out``: name → source path."""
    found = {}
    if out.is_dir():
        for d in out.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (m := read_marker(d)):
                found[d.name] = m["source"]["path"]
    return found


def existing_sources(out: Path) -> dict[str, str]:
    """The names sources were given in ``out`` (a multi-face source's clips share one): name → source path."""
    found = {}
    if out.is_dir():
        for d in out.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (m := read_marker(d)):
                found[m.get("base", d.name)] = m["source"]["path"]
    return found


def write_faces_jsonl(out: Path) -> int:
    """``OUT/faces.jsonl`` from every finished clip in ``out`` (clips in name order), atomically; returns lines."""
    n = 0
    with atomic_path(out / FACES) as tmp:
        with open(tmp, "w") as f:
            for name in sorted(existing_clips(out), key=natural_key):
                with open(out / name / FACES) as src:
                    for line in src:
                        f.write(line)
                        n += 1
    return n


# ---- the run --------------------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this worker when its parent dies, however it dies (SIGKILL included)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def _worker_init(options: dict, queue, parent: int) -> None:
    import cv2

    from hac_runtime.faces import FaceProcessor

    _die_with_parent(parent)

    cv2.setNumThreads(1)  # one process per core already
    _WORKER["processor"] = FaceProcessor(**options)
    _WORKER["queue"] = queue


def _worker_source(source: str, out: str, name: str, faces: str):
    q = _WORKER["queue"]
    try:
        return prepare_source(source, Path(out), name, _WORKER["processor"], faces, on_frames=lambda n: q.put((name, n)))
    except HacError as e:
        return str(e)


# A worker process costs ~2 s to start (imports, the 100 MB landmark model): ~80 frames of work on one core
# (benchmarks/faces.md). Parallel pays from about this many frames per worker, and only on idle cores.
FRAMES_PER_WORKER = 150


def estimated_frames(source) -> int:
    """Frames in a clip source, cheaply: image count of a folder, the container's count of a video."""
    p = Path(source)
    if p.is_dir():
        return len(image_files(p))
    if p.suffix.lower() in LIST_EXTS:
        try:
            return len(read_image_list(p))
        except HacError:
            return 1  # opening it says what is wrong
    if p.suffix.lower() not in VIDEO_EXTS:
        return 1
    import cv2

    cap = cv2.VideoCapture(str(p))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else FRAMES_PER_WORKER


def idle_cores() -> int:
    """Cores this process may use minus the current load (1-minute load average): workers on busy
    cores only slow everyone down (benchmarks/faces.md)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, n - int(load + 0.5))


def auto_workers(sources) -> int:
    """Processes worth starting: one per idle core and per clip, when there are frames enough to pay for them."""
    n = min(len(sources), idle_cores())
    frames = 0
    for src in sources:
        if n <= 1 or frames >= FRAMES_PER_WORKER * n:
            break
        frames += estimated_frames(src)
    return max(1, min(n, frames // FRAMES_PER_WORKER))


def prepare(inputs, out, detector: str = DEFAULT_DETECTOR, aligner: str = "sequence", size: int = 224,
            workers: int | None = None, progress: bool = True, detect_every: int = 1,
            folders_are_clips: bool = False, faces: str = "all") -> PrepareSummary:
    """Prepare every clip of ``inputs`` into ``out`` (see the module doc); HacError when nothing could be used."""
    from hac_runtime.faces import ALIGNERS, DETECTORS

    if faces not in FACE_MODES:
        raise HacError(f"unknown faces mode {faces!r}; choose one of {', '.join(FACE_MODES)}")
    if detector not in DETECTORS:
        raise HacError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if aligner not in ALIGNERS:
        raise HacError(f"unknown aligner {aligner!r}; choose one of {', '.join(ALIGNERS)}")
    if size < 16:
        raise HacError(f"--size must be >= 16, got {size}")
    if workers is not None and workers < 1:
        raise HacError(f"--workers must be >= 1, got {workers}")
    if not inputs:
        raise HacError("no inputs given")
    out = check_output_dir(Path(out), "prepared faces")
    t0 = time.perf_counter()
    options = {"detector": detector, "aligner": aligner, "size": size, "detect_every": detect_every}
    settings = {**_settings(options), "faces": faces}
    sources, failed = collect_clips(inputs, folders_are_clips)
    names = clip_names(sources, existing_sources(out))
    summary = PrepareSummary(out, failed=failed)
    results: dict[str, list[ClipSummary]] = {}  # source name → its clips
    jobs = []
    remove_stale_partials(out)
    for src, name in zip(sources, names):
        fp = fingerprint(src)
        if faces == "all":
            markers = done_group(out, name, fp, settings)
        else:
            markers = [m] if (m := done_marker(out / name, fp, settings)) else None
        if markers:
            results[name] = [skipped_summary(m) for m in markers]
        else:
            jobs.append((src, name))
    summary.workers = min(workers or auto_workers([src for src, _ in jobs]), max(1, len(jobs)))
    console = _console() if progress else None
    # one input only: its failure becomes the error line itself, no warning before it
    report = _Report(console, failures=len(sources) + len(failed) > 1)
    for _, why in failed:
        report.failure(why)
    if jobs:
        out.mkdir(parents=True, exist_ok=True)
        with _Progress(console, len(jobs)) as bar:
            if summary.workers == 1:
                _run_serial(jobs, out, options, faces, bar, results, summary, report)
            else:
                _run_parallel(jobs, out, options, faces, summary.workers, bar, results, summary, report)
    summary.clips = [c for n in names for c in results.get(n, [])]
    if summary.clips:
        write_faces_jsonl(out)
    summary.seconds = time.perf_counter() - t0
    if not summary.clips:
        first = summary.failed[0][1] if summary.failed else "no inputs"
        more = f" (and {len(summary.failed) - 1} more failed inputs)" if len(summary.failed) > 1 else ""
        raise HacError(f"nothing could be used: {first}{more}")
    return summary


def _settings(options: dict) -> dict:
    from types import SimpleNamespace

    from hac_runtime.faces import make_aligner, make_detector

    return settings_of(SimpleNamespace(detector=make_detector(options["detector"]), size=options["size"],
                                       aligner=make_aligner(options["aligner"], options["size"]),
                                       detect_every=options["detect_every"]))


def _record(result, src, name, bar, results, summary, report):
    if isinstance(result, list):
        results[name] = result
        for w in dict.fromkeys(w for c in result for w in c.warnings):  # a source's clips share its warnings
            report.warning(w)
        bar.clip_done(name, result)
    else:
        summary.failed.append((str(src), result))
        report.failure(result)
        bar.clip_done(name, None)


def _run_serial(jobs, out, options, faces, bar, results, summary, report):
    from hac_runtime.faces import FaceProcessor

    processor = FaceProcessor(**options)
    for src, name in jobs:
        try:
            result = prepare_source(src, out, name, processor, faces, on_frames=lambda n: bar.frames(name, n))
        except HacError as e:
            result = str(e)
        _record(result, src, name, bar, results, summary, report)


def _run_parallel(jobs, out, options, faces, workers, bar, results, summary, report):
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # no fork: callers may hold threads (torch, OpenCV)
    q = ctx.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(options, q, os.getpid()))
    try:
        pending = {pool.submit(_worker_source, str(src), str(out), name, faces): (src, name) for src, name in jobs}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(q, bar, queue_mod)
            for fut in done:
                src, name = pending.pop(fut)
                _record(fut.result(), src, name, bar, results, summary, report)
        _drain(q, bar, queue_mod)
    except BaseException:
        # Finished clips are committed; the clips in progress are abandoned (their partial folders are removed
        # by the next run, which redoes them): stop the workers now rather than let them finish unseen.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _drain(q, bar, queue_mod):
    while True:
        try:
            bar.frames(*q.get_nowait())
        except queue_mod.Empty:
            return


def _console():
    from rich.console import Console

    return Console(stderr=True)


class _Report:
    """Warnings on stderr as they come (nothing without a console)."""

    def __init__(self, console, failures: bool = True):
        self.console, self.failures = console, failures

    def warning(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(f"{program('hac-prepare')}: warning: {msg}", markup=False, highlight=False, soft_wrap=True)

    def failure(self, msg: str) -> None:
        if self.failures:
            self.warning(msg)


class _Progress:
    """A rich progress bar over clips with a live frame and face count; silent when ``console`` is None."""

    def __init__(self, console, n_clips: int):
        self.console, self.n_clips = console, n_clips
        self.done_frames = self.done_faces = 0
        self.counted: dict[str, int | None] = {}  # frames reported so far per clip; None once the clip is done
        self.progress = None

    def __enter__(self):
        if self.console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self.progress = Progress(TextColumn("preparing clips"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("clips", total=self.n_clips, info="")
        return self

    def frames(self, clip: str, n: int) -> None:
        if self.counted.get(clip, 0) is not None:  # late reports of a finished clip are already counted
            self.counted[clip] = self.counted.get(clip, 0) + n
            self._show()

    def clip_done(self, name: str, clips: list[ClipSummary] | None) -> None:
        """A source is done (its clips; None when it failed)."""
        if self.progress is not None:
            self.progress.advance(self.task)
        self.counted[name] = None
        if clips:
            self.done_frames += clips[0].frames  # a source's clips share its frames
            self.done_faces += sum(c.faces for c in clips)
        self._show()

    def _show(self):
        if self.progress is not None:
            frames = self.done_frames + sum(n for n in self.counted.values() if n)
            self.progress.update(self.task, info=f"{frames} frames, {self.done_faces} faces")

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
