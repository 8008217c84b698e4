"""``hac-run``'s progress on a terminal: one line per source — frames, frames/s, real-time factor, faces,
clips — refreshed twice a second; nothing at all when stderr is not a terminal (logs, pipes, CI)."""
from __future__ import annotations

import math
import time


def source_line(report, now: float) -> str:
    """``talk.mp4: 450/900 frames, 31.2 frames/s, 1.25× real time, 3 faces, 12 clips`` (rates over the time
    its frames took: from its first frame to its last, or to ``now``)."""
    elapsed = ((report.ended or now) - report.started) if report.started else 0.0
    fps = report.frames / elapsed if elapsed > 0 else 0.0
    done = f"{report.frames}/{report.frame_count}" if report.frame_count else f"{report.frames}"
    rt = f", {fps / report.fps:.2f}× real time" if report.fps else ""
    state = f" — {report.error}" if report.error else ""
    return (f"{report.name}: {done} frames, {fps:.1f} frames/s{rt}, {report.faces} faces, "
            f"{report.clips} clips{state}")


#: a live source this many seconds behind its own clock (and under ``LAG_FACTOR`` of real time) is said once
LAG_SECONDS = 5.0
LAG_FACTOR = 0.9
#: a frame rate above this is a stream's clock rate (RTSP's 90 kHz), not frames: no lag is judged by it
MAX_FPS = 1000.0


def lag_warning(frames: int, elapsed: float, fps: float | None, analyse_every: int, waited: float = 0.0,
                max_every: int | None = None) -> str | None:
    """What to tell the user when a live source is read slower than it runs, else None.

    ``frames`` were read in ``elapsed`` seconds of a source announcing ``fps``; the face thread ``waited``
    that long for frames. Said only when it fell ``LAG_SECONDS`` behind, under ``LAG_FACTOR`` of real time,
    *and* the face thread was the one holding it up (it waited under 10 % of the time: a camera that sends
    fewer frames than it announces keeps it waiting). ``max_every``: the largest ``analyse_every`` that
    still leaves k faces in a window."""
    if not (fps and 0 < fps <= MAX_FPS and elapsed > 0) or waited > 0.1 * elapsed:
        return None
    factor = frames / (elapsed * fps)
    behind = elapsed - frames / fps
    if factor >= LAG_FACTOR or behind < LAG_SECONDS:
        return None
    n = math.ceil(analyse_every / factor)  # face work only: decoding and inference do not shrink with it
    fix = (f"look at fewer frames (--analyse-every {n} or more) or detect less often (--detect-every)"
           if n <= (max_every or 10) else "this machine cannot follow it: fewer sources per machine, or a faster engine")
    shown = math.floor(factor * 100) / 100  # 0.896 is not "0.90×" when the line is drawn at 0.9
    return (f"{shown:.2f}× real time after {elapsed:.0f} s: a live source's results fall behind it "
            f"({behind:.0f} s so far; its frames queue up or are dropped); {fix}")


class RunProgress:
    """``with RunProgress(pipe, enabled):`` around ``pipe.run``; reads ``pipe.reports`` (no locks: counters)."""

    def __init__(self, pipe, enabled: bool = True):
        from rich.console import Console

        self.pipe = pipe
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.live = None

    def render(self):
        from rich.text import Text

        now = time.monotonic()
        return Text("\n".join(source_line(r, now) for r in self.pipe.reports) or "hac-run: starting")

    def __enter__(self):
        if self.enabled:
            from rich.live import Live

            self.live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2,
                             transient=False, redirect_stderr=True, redirect_stdout=False)
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.stop()  # the final lines stay on screen
