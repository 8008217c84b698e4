"""``hac-run --timeline FILE.png``: one source's emotion timeline, a row per face track.

Each row stacks the class probabilities of the track's running decisions (sliding windows) over time, each
one held from the end of its window, when it was made, until the next: so it shows when the expression
changed and how sure the model was, and never a decision before it was made. The track's final decision
(track policy) is named on its row.
"""
from __future__ import annotations

from pathlib import Path

from hac_runtime.atomic import atomic_path, os_reason
from hac_runtime.errors import HacError

MAX_ROWS = 12  #: tracks drawn at most (the longest)


def _colours(n: int):
    """One colour per class position: matplotlib's tab10 (tab20 for more than ten classes)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def write_timeline(path, running: list[dict], final: list[dict], classes: list[str], title: str) -> Path:
    """Draw ``running`` (sliding-window results) and ``final`` (one result per track, or none) to ``path``.

    A track with no running window (shorter than a window) is drawn from its final result over its span.
    At most ``MAX_ROWS`` tracks, the longest; the title says how many were left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    tracks = sorted({r["track"] for r in running} | {r["track"] for r in final})
    span = {t: max(r["t_end"] for r in running + final if r["track"] == t) -
            min(r["t_start"] for r in running + final if r["track"] == t) for t in tracks}
    shown = sorted(sorted(tracks, key=lambda t: -span[t])[:MAX_ROWS])
    colours = _colours(len(classes))
    rows = max(1, len(shown))
    # a Figure of its own (no pyplot): an app embedding the runtime keeps its backend and its open figures
    fig = Figure(figsize=(10, 1.2 + 1.5 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    end = max((r["t_end"] for r in running + final), default=1.0)
    for ax, track in zip(axes[:, 0], shown):
        points = sorted((r for r in running if r["track"] == track), key=lambda r: r["t_end"])
        last = next((r for r in final if r["track"] == track), None)
        track_end = max(r["t_end"] for r in running + final if r["track"] == track)
        if points:  # each decision holds from the end of its window until the next one is made
            x = [r["t_end"] for r in points] + [track_end]
            points = points + points[-1:]
        else:  # shorter than one window: the final decision over the track's span
            x, points = [last["t_start"], last["t_end"]], [last, last]
        ys = [[r["probs"].get(c, 0.0) for r in points] for c in classes]
        ax.stackplot(x, ys, colors=colours, step="post", alpha=0.9)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(end, 1e-3))
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel(f"track {track}", rotation=0, ha="right", va="center")
        if last is not None:
            ax.text(0.995, 0.92, f"final: {last['label']} {last['score']:.2f}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=9, bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})
    axes[-1, 0].set_xlabel("time (s)")
    left_out = len(tracks) - len(shown)
    fig.suptitle(title + (f" ({left_out} shorter tracks not drawn)" if left_out else "") if tracks
                 else f"{title}: no face track classified")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours]
    fig.legend(handles, classes, loc="lower center", ncol=min(len(classes), 8), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    except OSError as e:
        raise HacError(f"{path}: timeline not written ({os_reason(e)})") from None
    return path
