"""``prepare()``: the whole run — discovery, naming, skipping what is done, the workers, the summary."""
from __future__ import annotations

import time
from pathlib import Path

from hac_runtime.atomic import check_output_dir
from hac_runtime.errors import HacError
from hac_runtime.faces.detectors import DEFAULT_DETECTOR
from hac_runtime.progress import console as progress_console
from hac_runtime.prepare.commit import (done_group, done_marker, existing_sources, fingerprint, remove_stale_partials,
                                        settings_of, skipped_summary, write_faces_jsonl)
from hac_runtime.prepare.console import ClipProgress, Report
from hac_runtime.prepare.discovery import collect_clips
from hac_runtime.prepare.naming import clip_names
from hac_runtime.prepare.pool import run_parallel, run_serial, auto_workers
from hac_runtime.prepare.source import FACE_MODES
from hac_runtime.prepare.summary import ClipSummary, PrepareSummary


def prepare(inputs, out, detector: str = DEFAULT_DETECTOR, aligner: str = "sequence", size: int = 224,
            workers: int | None = None, progress: bool = True, detect_every: int = 1,
            folders_are_clips: bool = False, faces: str = "all", new_face_score: float | None = None) -> PrepareSummary:
    """Prepare every clip of ``inputs`` into ``out`` (see the module doc); HacError when nothing could be used."""
    from hac_runtime.faces import ALIGNERS, DETECTORS

    if faces not in FACE_MODES:
        raise HacError(f"unknown faces mode {faces!r}; choose one of {', '.join(FACE_MODES)}")
    if detector not in DETECTORS:
        raise HacError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if aligner not in ALIGNERS:
        raise HacError(f"unknown aligner {aligner!r}; choose one of {', '.join(ALIGNERS)}")
    if size < 16:
        raise HacError(f"--size must be >= 16, got {size}")
    if workers is not None and workers < 1:
        raise HacError(f"--workers must be >= 1, got {workers}")
    if not inputs:
        raise HacError("no inputs given")
    out = check_output_dir(Path(out), "prepared faces")
    t0 = time.perf_counter()
    options = {"detector": detector, "aligner": aligner, "size": size, "detect_every": detect_every,
               "new_face_score": new_face_score}
    settings = {**_settings(options), "faces": faces}
    warnings: list[str] = []
    sources, failed = collect_clips(inputs, folders_are_clips, warn=warnings.append)
    names = clip_names(sources, existing_sources(out))
    summary = PrepareSummary(out, failed=failed, warnings=warnings)
    results: dict[str, list[ClipSummary]] = {}  # source name → its clips
    jobs = []
    remove_stale_partials(out)
    for src, name in zip(sources, names):
        fp = fingerprint(src)
        if faces == "all":
            markers = done_group(out, name, fp, settings)
        else:
            markers = [m] if (m := done_marker(out / name, fp, settings)) else None
        if markers:
            results[name] = [skipped_summary(m) for m in markers]
        else:
            jobs.append((src, name))
    summary.workers = min(workers or auto_workers([src for src, _ in jobs]), max(1, len(jobs)))
    console = progress_console() if progress else None
    # one input only: its failure becomes the error line itself, no warning before it
    report = Report(console, failures=len(sources) + len(failed) > 1)
    for _, why in failed:
        report.failure(why)
    for line in warnings:
        report.warning(line)
    if jobs:
        out.mkdir(parents=True, exist_ok=True)
        with ClipProgress(console, len(jobs)) as bar:
            if summary.workers == 1:
                run_serial(jobs, out, options, faces, bar, results, summary, report)
            else:
                run_parallel(jobs, out, options, faces, summary.workers, bar, results, summary, report)
    summary.clips = [c for n in names for c in results.get(n, [])]
    if summary.clips:
        write_faces_jsonl(out)
    summary.seconds = time.perf_counter() - t0
    if not summary.clips:
        first = summary.failed[0][1] if summary.failed else "no inputs"
        more = f" (and {len(summary.failed) - 1} more failed inputs)" if len(summary.failed) > 1 else ""
        raise HacError(f"nothing could be used: {first}{more}")
    return summary


def _settings(options: dict) -> dict:
    from types import SimpleNamespace

    from hac_runtime.faces import make_aligner, make_detector

    return settings_of(SimpleNamespace(detector=make_detector(options["detector"], new_face_score=options["new_face_score"]),
                                       size=options["size"],
                                       aligner=make_aligner(options["aligner"], options["size"]),
                                       detect_every=options["detect_every"]))
