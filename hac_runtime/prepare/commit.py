"""How a prepared clip is committed: staged in ``OUT/.<clip>.partial-<pid>``, made durable, sealed with its
``.done.json`` marker and renamed into place; what counts as done, and the leftovers of dead runs."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from hac_runtime.atomic import atomic_path
from hac_runtime.clips import face_files
from hac_runtime.errors import HacError
from hac_runtime.faces.quality import MIN_QUALITY
from hac_runtime.media import image_files, is_stream, natural_key
from hac_runtime.prepare.summary import ClipSummary


FORMAT = "hac-prepare/1"


MARKER = ".done.json"


FACES = "faces.jsonl"


PARTIAL = ".partial"


PARTIAL_RE = re.compile(r"^\.(?P<clip>.+)\.partial(?:-(?P<pid>\d+))?$")


#: how a face starts, in both faces modes (faces.processor, pipeline.tracker): a rule prepared clips were made with
NEW_FACES = "strong detection, found again on the next frame"


def settings_of(processor, faces: str = "largest") -> dict:
    """The settings that make prepared faces differ: a clip prepared with others is redone."""
    d = processor.detector
    return {"detector": d.name, "max_side": d.max_side, "upsample": d.upsample, "new_face_score": d.new_face_score,
            "aligner": processor.aligner.name, "size": processor.size, "detect_every": processor.detect_every,
            "min_quality": MIN_QUALITY, "faces": faces, "new_faces": NEW_FACES}


def fingerprint(source) -> dict:
    """Identity of a source: resolved path, size and modification time (for folders: of their images)."""
    if is_stream(source) or not isinstance(source, (str, os.PathLike)):
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
        pngs = len(face_files(clip_dir))
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


def _remove_others(out: Path, name: str, names: list[str]) -> None:
    """Remove the clips an earlier run made of source ``name`` (other faces mode) that are not ``names``."""
    for old in group_of(out, name):
        if old.name not in names:
            shutil.rmtree(old, ignore_errors=True)


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
