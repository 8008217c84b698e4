"""k-segment frame sampling (paper §3.1, eq. 1).

A clip of N frames is cut into k equal segments. Training takes one random frame
per segment; evaluation takes each segment's centre (deterministic).

N < k: the paper takes all N frames. Engines need a fixed k, so by default the
N frames are *stretched* to k in temporal order (nearest-neighbour resampling:
N=3, k=5 → 0 0 1 1 2), which keeps onset → apex order; ``pad="none"`` returns
the N frames as the paper does (eager PyTorch accepts any k).
"""
from __future__ import annotations

import numpy as np

from hac_runtime.errors import HacError

PADS = ("stretch", "none")


class ClipSampler:
    """Pick k frame indices from a clip of N frames (§3.1)."""

    def __init__(self, k: int = 5, pad: str = "stretch"):
        if k < 1:
            raise HacError(f"k must be >= 1, got {k}")
        if pad not in PADS:
            raise HacError(f"unknown padding {pad!r}; choose one of {', '.join(PADS)}")
        self.k = k
        self.pad = pad

    def segments(self, n: int) -> list[tuple[int, int]]:
        """The k half-open segments ``[start, end)`` of a clip with n ≥ k frames."""
        bounds = [round(j * n / self.k) for j in range(self.k + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def indices(self, n: int, train: bool = False, rng: np.random.Generator | None = None) -> list[int]:
        """k indices into the clip (fewer when n < k and ``pad="none"``)."""
        if n < 1:
            raise HacError("cannot sample from a clip with no frames")
        if n < self.k:
            if self.pad == "none":
                return list(range(n))
            return [i * n // self.k for i in range(self.k)]
        if train:
            rng = rng if rng is not None else np.random.default_rng()
            return [int(rng.integers(a, b)) for a, b in self.segments(n)]
        return [(a + b - 1) // 2 for a, b in self.segments(n)]
