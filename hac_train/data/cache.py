"""The face cache: every clip of a dataset prepared once by ``hac_runtime.prepare`` (§4.2) and reused across runs.

Default location ``<DATA>/.hac-cache/<aligner>-<size>/`` (``--cache DIR`` to move it);
``hac_runtime.prepare`` keys clips by their source path and skips clips already done
with the same source and settings. Clips that cannot be read or hold no face are not
used: they go to the skipped-clips report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hac_runtime.errors import HacError
from hac_train.data.layouts import DatasetIndex, Sample


@dataclass(frozen=True)
class PreparedClip:
    sample: Sample
    faces_dir: Path
    faces: int
    frames: int


@dataclass(frozen=True)
class SkippedClip:
    key: str
    label: str
    reason: str

    def to_dict(self) -> dict:
        return {"clip": self.key, "label": self.label, "reason": self.reason}


def default_cache(index: DatasetIndex, aligner: str, size: int) -> Path:
    return index.root / ".hac-cache" / f"{aligner}-{size}"


def prepare_faces(index: DatasetIndex, cache=None, aligner: str = "sequence", size: int = 224,
                  detector: str | None = None, workers: int | None = None, progress: bool = True,
                  detect_every: int = 1) -> tuple[list[PreparedClip], list[SkippedClip], Path]:
    """Prepare (or reuse) the aligned faces of every sample; returns ``(clips, skipped, cache_dir)``."""
    from hac_runtime.faces import DEFAULT_DETECTOR
    from hac_runtime.prepare import prepare

    cache = Path(cache) if cache else default_cache(index, aligner, size)
    missing = [s for s in index.samples if not s.source.exists()]
    skipped = [SkippedClip(s.key, s.label, f"{s.source}: no such file or folder") for s in missing]
    todo = [s for s in index.samples if s.source.exists()]
    if not todo:
        raise HacError(f"{index.root}: none of the {len(index.samples)} clips exists")
    try:
        summary = prepare([str(s.source) for s in todo], cache, detector=detector or DEFAULT_DETECTOR,
                          aligner=aligner, size=size, workers=workers, progress=progress, detect_every=detect_every,
                          folders_are_clips=True,  # a dataset says what its clips are
                          faces="largest")  # and its label is one subject's
    except HacError as e:
        raise HacError(f"no usable clip in {index.root}: {e}") from None
    by_source = {str(Path(c.source).resolve()): c for c in summary.clips}
    failed = {str(Path(inp).resolve()): why for inp, why in summary.failed}
    clips = []
    for s in todo:
        src = str(s.source.resolve())
        c = by_source.get(src)
        if c is None:
            skipped.append(SkippedClip(s.key, s.label, failed.get(src, "not prepared")))
        elif c.faces == 0:  # with why, where prepare said (faces too weak to start, or not found again)
            why = "; ".join(w.removeprefix(f"{c.name}: ") for w in c.warnings)
            skipped.append(SkippedClip(s.key, s.label, f"no face found in its {c.frames} frames"
                                       + (f" ({why})" if why else "")))
        else:
            clips.append(PreparedClip(s, cache / c.name, c.faces, c.frames))
    return clips, skipped, cache
