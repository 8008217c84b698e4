"""Clip names from input paths: as many parent folders as it takes to tell inputs apart."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path


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
