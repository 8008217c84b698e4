"""The worker processes: how many pay off, their per-process state, and how results come back."""
from __future__ import annotations

import os
from pathlib import Path

from hac_runtime.errors import HacError
from hac_runtime.media import LIST_EXTS, VIDEO_EXTS, image_files, read_image_list
from hac_runtime.prepare.source import prepare_source


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


def run_serial(jobs, out, options, faces, bar, results, summary, report):
    from hac_runtime.faces import FaceProcessor

    processor = FaceProcessor(**options)
    for src, name in jobs:
        try:
            result = prepare_source(src, out, name, processor, faces, on_frames=lambda n: bar.frames(name, n))
        except HacError as e:
            result = str(e)
        _record(result, src, name, bar, results, summary, report)


def run_parallel(jobs, out, options, faces, workers, bar, results, summary, report):
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
