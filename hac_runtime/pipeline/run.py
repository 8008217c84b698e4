"""``hac-run``'s one function: run the pipeline over sources, write JSON lines and optionally annotated video."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from hac_runtime.atomic import check_output_file
from hac_runtime.errors import HacError
from hac_runtime.media import is_stream
from hac_runtime.pipeline.output import JsonLinesWriter, annotate_video, check_video_suffix
from hac_runtime.pipeline.pipeline import Pipeline, no_source_used
from hac_runtime.pipeline.config import DEFAULTS, PipelineConfig
from hac_runtime.pipeline.progress import RunProgress


@dataclass
class RunSummary:
    results: int
    sources_ok: int
    sources_failed: int
    faces: int
    engine: str
    unclassified: int = 0  #: clips whose batch the engine could not run (a Triton server down mid-run)
    unclassified_reason: str | None = None
    not_sent: int = 0  #: batches of those clips the circuit breaker kept from a failing engine (``breaker``)

    def failure(self) -> str | None:
        """One line when clips went unclassified (the run's exit code is then 1), else None."""
        if not self.unclassified:
            return None
        paused = (f"; {self.not_sent} of their batches not sent, the engine having failed several in a row"
                  if self.not_sent else "")
        return (f"{self.unclassified} clip(s) not classified ({self.unclassified_reason}){paused}; "
                f"the {self.results} result(s) classified were written")


def per_source_paths(path, sources: list[str]) -> list[Path]:
    """One output file (annotated video, timeline) per source: ``FILE`` for one source,
    ``FILE-stem.<name>.suffix`` for several (``<name>-<i>`` for a source given more than once)."""
    path = Path(path)
    if len(sources) == 1:
        return [path]
    names = [Path(str(s)).stem or str(i) for i, s in enumerate(sources)]
    names = [f"{n}-{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]  # a source given twice
    return [path.with_name(f"{path.stem}.{n}{path.suffix}") for n in names]


@contextlib.contextmanager
def drain_on_sigint(pipe: Pipeline, log):
    """First Ctrl-C: stop reading, finish the clips in flight (``Pipeline.drain``); a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if pipe.draining:
            raise KeyboardInterrupt
        pipe.drain()
        log("hac-run: Ctrl-C: stopping the sources and classifying the faces already seen (Ctrl-C again to quit now)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _not_drawn(video_out, timeline) -> str:
    """What an interrupted run does not write: the annotated video and timeline are drawn after a whole run."""
    asked = [what for what, path in (("annotated video", video_out), ("timeline", timeline)) if path is not None]
    return f"; no {' or '.join(asked)} (drawn only after a whole run)" if asked else ""


def run_sources(sources, model, engine: str = "auto", device: str = "auto", precision: str | None = None,
                out=None, video_out=None, timeline=None,
                config: PipelineConfig | None = None, cuda_graph: bool = False, log=None, progress: bool = True,
                **settings) -> RunSummary:
    """Classify every face track in ``sources`` with ``model`` (an exported artifact or an export folder);
    results to ``out`` (stdout if None). Ctrl-C finishes the clips in flight, then raises KeyboardInterrupt.
    ``progress``: a line per source on a terminal (``pipeline.progress``); never when stderr is not one.
    ``timeline``: a PNG per source of each track's running decisions (``pipeline.timeline``).
    ``config`` (``PipelineConfig``) with ``settings`` (any of its fields) on top; its policy defaults to
    ``window`` when a source is live, else ``track``."""
    config = (config or DEFAULTS).replace(**settings)
    sources = [str(s) for s in sources]
    if not sources:
        raise HacError("no source given")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    live = any(is_stream(s) for s in sources)
    if video_out is not None and live:
        raise HacError("--video-out needs file or folder sources (it re-reads them to draw the results)")
    policy = config.policy or ("window" if live else "track")
    config = config.replace(policy=policy)
    if timeline is not None and live:
        raise HacError("--timeline needs file or folder sources (a live source ends only by Ctrl-C)")
    if timeline is not None and Path(timeline).suffix.lower() != ".png":
        raise HacError(f"{timeline}: --timeline writes a PNG image; give a .png file name")
    # every output location is checked before the model is even opened
    if video_out is not None:
        check_video_suffix(video_out)  # the format too: refused after the run, it cost the whole run
    for path in per_source_paths(video_out, sources) if video_out is not None else []:
        check_output_file(path, "annotated video")
    for path in per_source_paths(timeline, sources) if timeline is not None else []:
        check_output_file(path, "timeline")
    missing = [s for s in sources if not is_stream(s) and not Path(s).exists()]
    if len(missing) == len(sources):  # said before the model is opened (an engine can take seconds to choose)
        raise HacError(no_source_used((s, "no such file or folder") for s in missing))
    keep = video_out is not None or timeline is not None  # results kept for drawing; a live run keeps none
    writer = JsonLinesWriter(out)  # checked now; the file itself is replaced only once results come
    results: list[dict] = []  # kept only to draw the annotated video or timeline: a live run keeps none
    count = 0
    pipe = Pipeline(model, engine=engine, device=device, precision=precision, config=config,
                    keep_boxes=video_out is not None, keep_running=keep, cuda_graph=cuda_graph)
    chosen = pipe.choice.describe() if pipe.choice is not None else pipe.engine.artifact.name
    log(f"hac-run: engine {chosen}; providers {', '.join(pipe.engine.providers)}; "
        f"{pipe.engine.precision}, k={pipe.k}, {pipe.size}px, clip policy {policy}")
    commit = False
    try:
        with drain_on_sigint(pipe, log), RunProgress(pipe, enabled=progress):
            for r in pipe.run(sources):
                writer.write(r)
                count += 1
                if keep:
                    results.append(r)
        commit = True
    except KeyboardInterrupt:
        commit = count > 0  # what was classified is kept
        log(f"hac-run: interrupted; {count} result(s) written{_not_drawn(video_out, timeline)}")
        raise
    finally:
        # a run in which no source could be read leaves an existing results file as it was
        commit = commit and (count > 0 or any(r.error is None for r in pipe.reports))
        writer.close(commit=commit)
        pipe.close()
    if pipe.draining:
        log(f"hac-run: interrupted; {count} result(s) written, the clips in flight included"
            f"{_not_drawn(video_out, timeline)}")
        raise KeyboardInterrupt
    reports = pipe.reports
    if video_out is not None:
        for i, (src, rep, path) in enumerate(zip(sources, reports, per_source_paths(video_out, sources))):
            if rep.error is None:  # track policy: the running (sliding-window) decisions too; the final wins ties
                drawn = (rep.running if policy == "track" else []) + [r for r in results if r["source_index"] == i]
                annotate_video(src, path, rep.boxes, drawn)
                log(f"hac-run: annotated video {path}")
    if timeline is not None:
        from hac_runtime.pipeline.timeline import write_timeline

        for i, (src, rep, path) in enumerate(zip(sources, reports, per_source_paths(timeline, sources))):
            if rep.error is None:
                mine = [r for r in results if r["source_index"] == i]
                running, final = (rep.running, mine) if policy == "track" else (mine, [])
                write_timeline(path, running, final, list(pipe.classes), f"{src} ({policy} policy)")
                log(f"hac-run: timeline {path}")
    for src, rep in zip(sources, reports):
        if rep.error is None and rep.faces == 0:
            log(f"hac-run: {src}: no face found in {rep.frames} frames; no results")
    ok = sum(r.error is None for r in reports)
    lost = [r for r in reports if r.unclassified]
    return RunSummary(count, ok, len(reports) - ok, sum(r.faces for r in reports), pipe.engine.kind,
                      sum(r.unclassified for r in lost), lost[-1].unclassified_reason if lost else None,
                      pipe.not_sent)
