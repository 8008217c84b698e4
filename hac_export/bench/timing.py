"""Latency measurement that holds up on a noisy VM: warm-up by time, interleaved rounds, percentiles.

Every candidate runs once per round, in a rotating order, so slow drifts of the
machine (other processes, frequency, first-touch memory) hit all of them alike.
Between two calls the clock stops for ``settle`` seconds: each runtime keeps its
own worker threads spinning for a while after a call (ONNX Runtime's intra-op
pool, OpenMP), and on a 2-core machine they would otherwise steal the cores
from the next candidate.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def warm_up(fn: Callable[[], object], seconds: float, min_calls: int = 2) -> int:
    """Call ``fn`` for at least ``seconds`` and ``min_calls`` times; return the number of calls."""
    calls, end = 0, time.perf_counter() + seconds
    while calls < min_calls or time.perf_counter() < end:
        fn()
        calls += 1
    return calls


def measure_interleaved(fns: dict[str, Callable[[], object]], min_rounds: int = 10, min_seconds: float = 5.0,
                        max_rounds: int = 1000, timer: Callable[[Callable[[], object]], float] | None = None,
                        on_round: Callable[[int], None] | None = None, settle: float = 0.0) -> dict[str, np.ndarray]:
    """Per-call seconds of every ``fns`` entry over at least ``min_rounds`` rounds and ``min_seconds`` of calls.

    ``timer(fn)`` returns one call's seconds (default: wall clock around the call;
    GPU runs pass one based on CUDA events). ``settle``: untimed pause before each call.
    """
    timer = timer or _wall
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    busy = 0.0
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or busy < min_seconds):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            if settle:
                time.sleep(settle)
            times[name].append(timer(fns[name]))
            busy += times[name][-1]
        rounds += 1
        if on_round:
            on_round(rounds)
    return {n: np.asarray(v) for n, v in times.items()}


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def percentiles_ms(seconds: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(np.asarray(seconds) * 1e3, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99)}
