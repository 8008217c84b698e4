"""``hac-run``'s progress on a terminal: one line per source — frames, frames/s, real-time factor, faces,
clips — refreshed twice a second; nothing at all when stderr is not a terminal (logs, pipes, CI)."""
from __future__ import annotations

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
