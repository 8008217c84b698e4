"""What ``hac-prepare`` shows while it works: warnings as they come and the progress bar."""
from __future__ import annotations

from hac_runtime.errors import program
from hac_runtime.progress import progress_bar
from hac_runtime.prepare.summary import ClipSummary


class Report:
    """Warnings on stderr as they come (nothing without a console)."""

    def __init__(self, console, failures: bool = True):
        self.console, self.failures = console, failures

    def warning(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(f"{program('hac-prepare')}: warning: {msg}", markup=False, highlight=False, soft_wrap=True)

    def failure(self, msg: str) -> None:
        if self.failures:
            self.warning(msg)


class ClipProgress:
    """The progress bar over clips (``progress.progress_bar``) with a live frame and face count; silent when
    ``console`` is None."""

    def __init__(self, console, n_clips: int):
        self.console, self.n_clips = console, n_clips
        self.done_frames = self.done_faces = 0
        self.counted: dict[str, int | None] = {}  # frames reported so far per clip; None once the clip is done
        self._bar = progress_bar("preparing clips", n_clips, enabled=console is not None, out=console)

    def __enter__(self):
        self.bar = self._bar.__enter__()
        return self

    def frames(self, clip: str, n: int) -> None:
        if self.counted.get(clip, 0) is not None:  # late reports of a finished clip are already counted
            self.counted[clip] = self.counted.get(clip, 0) + n
            self._show()

    def clip_done(self, name: str, clips: list[ClipSummary] | None) -> None:
        """A source is done (its clips; None when it failed)."""
        self.bar.advance()
        self.counted[name] = None
        if clips:
            self.done_frames += clips[0].frames  # a source's clips share its frames
            self.done_faces += sum(c.faces for c in clips)
        self._show()

    def _show(self):
        if self.bar.shown:
            frames = self.done_frames + sum(n for n in self.counted.values() if n)
            self.bar.info(f"{frames} frames, {self.done_faces} faces")

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)
