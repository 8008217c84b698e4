"""The clips every artifact is judged on: the user's real clips (``--calib``), else ``hac-synth`` clips.

Never random noise: noise drives a network where no face does (saturated
attention, flat logits), so parity on it says little about the clips that
matter. Without ``--calib`` the parity clips are synthetic expressions made
from real face photos (``hac_train.synth``), found, landmarked and aligned by
``hac-prepare`` like any video, and cached per image size in
``$HAC_CACHE`` (default ``~/.cache/hac``) — built once, atomically.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hac_export.int8 import ClipSet, load_clips
from hac_runtime.clips import clip_folders
from hac_runtime.errors import HacError
from hac_runtime.machine import cache_root
from hac_runtime.spec import Preprocess

SYNTH_CLIPS = 16


def synthetic_clips(folder: Path | None, image_size: int, clips: int = SYNTH_CLIPS, log=None) -> Path:
    """``folder/synth-aligned-<size>/<expression>/<clip>/NNNNN.png``: hac-synth clips aligned by hac-prepare.

    Reused when present; otherwise built in a temporary folder and renamed into place, so a killed
    build never leaves a partial set behind and two concurrent builds do not mix."""
    from hac_runtime.prepare import prepare
    from hac_train.synth import synthesize

    folder = Path(folder) if folder is not None else cache_root() / "parity-clips"
    final = folder / f"synth-aligned-{image_size}"
    if final.is_dir() and clip_folders(final):
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=folder))
    except OSError as e:
        raise HacError(f"{folder}: cannot write the parity clips here ({e.strerror or type(e).__name__}); "
                       "set HAC_CACHE or pass --calib") from None
    try:
        if log:
            log(f"making {clips} synthetic clips ({image_size} px) for parity, cached in {final}")
        synthesize(work / "raw", clips=clips, seed=0, progress=False)
        for label_dir in sorted(p for p in (work / "raw").iterdir() if p.is_dir()):
            videos = sorted(label_dir.glob("*.mp4"))
            if videos:
                prepare(videos, work / "aligned" / label_dir.name, size=image_size, workers=1, progress=False,
                        faces="largest")
        try:
            os.replace(work / "aligned", final)
        except OSError:
            if not final.is_dir():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def parity_clips(calib, preprocess: Preprocess, classes, cache: Path | None = None, progress=None,
                 log=None) -> tuple[ClipSet, str]:
    """The clips to judge parity on and a description of them: ``calib`` when given, else synthetic clips."""
    if calib is not None:
        clips = load_clips(calib, preprocess, classes, progress=progress)
        return clips, f"{len(clips.x)} real clips from {Path(calib).name} ({clips.labelled} labelled)"
    root = synthetic_clips(cache, preprocess.image_size, log=log)
    clips = load_clips(root, preprocess, classes, progress=progress)
    return clips, (f"{len(clips.x)} hac-synth clips (real face photos warped into expressions), "
                   "aligned by hac-prepare")
