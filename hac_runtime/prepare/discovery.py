"""Which inputs are clips: videos, frame folders, image lists and photos, searched for in dataset trees."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from hac_runtime.errors import some_names
from hac_runtime.media import VIDEO_EXTS, image_files, is_frame_sequence, natural_key, stray_images


def collect_clips(inputs, folders_are_clips: bool = False, warn: Callable[[str], None] | None = None
                  ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Clip sources from the inputs (files; image folders; dataset trees searched), and ``(input, reason)``
    failures; ``warn`` gets lines for people.

    A folder of images is one clip when it is a frame sequence (``media.is_frame_sequence``), else each
    photo is a clip of its own, and a folder that is photos only because of a few other images among its
    numbered frames (``media.stray_images``) is said; ``folders_are_clips``: every image folder is one clip
    (a dataset's clips)."""
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
            if warn is not None and (others := stray_images(files)):
                frame = next(f for f in files if f not in others)
                warn(f"{p}: read as {len(files)} separate photos, not one clip of frames: "
                     f"{len(files) - len(others)} are numbered frames like {frame.name}, "
                     f"{len(others)} {'is' if len(others) == 1 else 'are'} not ({some_names([f.name for f in others])}); move "
                     f"{'it' if len(others) == 1 else 'those'} out to read the frames as one clip")
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
