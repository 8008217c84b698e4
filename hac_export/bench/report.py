"""The bench document as a table (rich), JSON (CONTRACTS.md "Bench JSON") and a latency-vs-batch plot."""
from __future__ import annotations

from pathlib import Path

from hac_runtime.atomic import atomic_path
from hac_runtime.atomic import write_json as _write_json


#: the table's columns for people, in the table's order (``legend``: only those the table shows)
LEGEND = (
    ("MB", "MB artifact size"),
    ("p50 ms", "p50/p90/p99 ms latency of one batch (percentiles over the timed calls, all runners interleaved)"),
    ("GPU ms", "GPU/H2D/D2H ms p50 of the engine's compute, copy in and copy out, timed with CUDA events on the "
               "engine's own stream (eager: compute only, input already on the GPU)"),
    ("clips/s", "clips/s, frames/s at p50 (a clip is k frames)"),
    ("speedup", "speedup p50 of eager over this row's p50"),
    ("% peak", "% peak achieved FLOP/s over this machine's measured peak of the row's precision where one was probed "
               "(GPU: FP32 with TF32 off, TF32, FP16, BF16, INT8; CPU: FP32, BF16, INT8), else the FP32 peak"),
    ("max abs", "max abs largest logit error against eager FP32 on the parity clips"),
    ("top-1", "top-1 share of clips whose arg-max agrees (the full verdict, with cosine and logit_err_rel, is in each "
              "artifact's manifest)"),
)


def legend(columns: list[str]) -> str:
    """``columns: …``: what each of the table's ``columns`` means (those without an entry need none)."""
    return "columns: " + " · ".join(text for col, text in LEGEND if col in columns)


def peaks_line(peak: dict) -> str:
    """``peaks FP32 …, BF16 …, INT8 … GFLOP/s (how)``: every precision this machine's peak was probed in."""
    names = [n for n in ("fp32", "tf32", "fp16", "bf16", "int8") if peak.get(f"{n}_gflops")]
    figures = ", ".join(f"{n.upper()} {peak[f'{n}_gflops']}" for n in names) or f"FP32 {peak['peak_gflops']}"
    missing = f"; OpenVINO not probed: {peak['openvino_missing']}" if peak.get("openvino_missing") else ""
    return f"peaks {figures} GFLOP/s ({peak['how']}{missing})"


def _f(v, fmt):
    return "—" if v is None else format(v, fmt)


def print_table(doc: dict, console=None) -> None:
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 200)
    m = doc["machine"]
    title = (f"hac-bench · {m['gpu'] or m['cpu']} · {doc['model']['config']['backbone']} k={doc['model']['k']} "
             f"{doc['model']['image_size']}px · {doc['model']['gflops_per_clip']} GFLOP/clip")
    table = Table(title=title, caption=f"speedup vs {doc['baseline']}; {peaks_line(doc['peak'])}")
    gpu = any("device_p50_ms" in r for r in doc["results"])
    cols = ["engine", "format", "prec", "batch", "status", "MB", "p50 ms", "p90 ms", "p99 ms"]
    cols += ["GPU ms", "H2D ms", "D2H ms"] if gpu else []
    cols += ["clips/s", "frames/s", "speedup", "% peak", "max abs", "top-1"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("engine", "format", "prec", "status") else "right")
    for r in doc["results"]:
        p = r.get("parity") or {}
        status = r["status"] if r["status"] == "ok" else f"[yellow]{r['status']}[/]"
        row = [r["engine"], r["format"], r["precision"], str(r["batch"]), status, _f(r["size_mb"], ".1f"),
               _f(r["p50_ms"], ".1f"), _f(r["p90_ms"], ".1f"), _f(r["p99_ms"], ".1f")]
        row += [_f(r.get(key), ".2f") for key in ("device_p50_ms", "h2d_p50_ms", "d2h_p50_ms")] if gpu else []
        row += [_f(r["clips_per_s"], ".1f"), _f(r["frames_per_s"], ".0f"),
                "—" if r["speedup_vs_eager"] is None else f"{r['speedup_vs_eager']:.2f}×",
                "—" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.0f}%",
                _f(p.get("max_abs"), ".1e"), _f(p.get("top1_agree"), ".3f")]
        table.add_row(*row)
    console.print(table)
    for r in doc["results"]:
        if r["status"] != "ok" and r.get("reason") and r["batch"] == doc["results"][0]["batch"]:
            # markup off: reasons hold install hints such as pip install -e '.[openvino]'
            console.print(f"  {r['engine']}/{r['format']}/{r['precision']}: {r['status']}: {r['reason']}",
                          markup=False, highlight=False)
    console.print(legend(cols), highlight=False)
    for note in doc.get("notes", []):
        console.print(f"[bold]note:[/] {escape(note)}")


def write_json(path, doc: dict) -> Path:
    path = Path(path)
    _write_json(path, doc)
    return path


def write_plot(path, doc: dict) -> Path:
    """p50 latency per clip against batch size, one line per engine/precision (log–log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list] = {}
    for r in doc["results"]:
        if r["p50_ms"] is not None:
            series.setdefault(f"{r['engine']} {r['format']} {r['precision']}", []).append((r["batch"], r["p50_ms"] / r["batch"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([b for b, _ in pts], [ms for _, ms in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch (clips)")
    ax.set_ylabel("p50 latency per clip (ms)")
    ax.set_title(f"hac-bench: {doc['machine']['gpu'] or doc['machine']['cpu']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
