"""Facts about this machine, and where the toolkit keeps what it builds once (one place for both)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_root() -> Path:
    """``$HAC_CACHE``, else ``$XDG_CACHE_HOME/hac``, else ``~/.cache/hac``."""
    if os.environ.get("HAC_CACHE"):
        return Path(os.environ["HAC_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hac"
