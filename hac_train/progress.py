"""One rich progress bar for every long training-side job (synthesis, training epochs, evaluation)."""
from __future__ import annotations

import contextlib


class _Bar:
    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)
            if info is not None:
                self.progress.update(self.task, info=info)

    def info(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, info=text)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """``with progress_bar("epoch 3/12", n) as bar: bar.advance(info="loss 0.41 acc 0.80")`` (on stderr)."""
    if not enabled:
        yield _Bar(None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    progress = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console(), transient=False)
    with progress:
        yield _Bar(progress, progress.add_task(description, total=total, info=""))


def console():
    """The stderr console shared by training's messages and bars."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)
