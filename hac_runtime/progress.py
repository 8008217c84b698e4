"""The one progress bar and stderr console of the toolkit: preparing faces, training epochs, synthesis,
exports. ``hac-run``'s per-source lines (``pipeline.progress``) are a live view of a different kind."""
from __future__ import annotations

import contextlib


def console():
    """The stderr console that messages and bars share (no highlighting: paths and numbers stay plain)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class Bar:
    """One task of a progress display; every method does nothing when the display is off."""

    def __init__(self, progress=None, task=None):
        self.progress, self.task = progress, task

    @property
    def shown(self) -> bool:
        return self.progress is not None

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)
            if info is not None:
                self.progress.update(self.task, info=info)

    def info(self, text: str) -> None:
        """The text beside the count (``120 frames, 97 faces``)."""
        if self.progress is not None:
            self.progress.update(self.task, info=text)

    def describe(self, text: str) -> None:
        """The text before the bar (what is being done now)."""
        if self.progress is not None:
            self.progress.update(self.task, description=text)

    def subtask(self, description: str, total: int) -> Bar:
        """A second bar under this one (e.g. calibration clips within an export)."""
        if self.progress is None:
            return Bar()
        return Bar(self.progress, self.progress.add_task(description, total=total, info=""))

    def print(self, text: str, markup: bool = False) -> None:
        """A line above the bars (``markup``: rich's ``[red]…[/]`` tags are styles, not text)."""
        if self.progress is not None:
            self.progress.console.print(text, markup=markup, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True, transient: bool = False, out=None):
    """``with progress_bar("epoch 3/12", n) as bar: bar.advance(info="loss 0.41 acc 0.80")`` on stderr
    (``out``: another rich console); with ``transient`` the bar is gone once done."""
    if not enabled:
        yield Bar()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=out or console(), transient=transient)
    with progress:
        yield Bar(progress, progress.add_task(description, total=total, info=""))
