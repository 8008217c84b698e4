"""Reproduce benchmarks/engines.md: ``hac-bench`` on the built-in default model, rendered as Markdown.

Run: ``.venv/bin/python benchmarks/engines.py [--engine all] [--batch 1,8] [--seconds 10] [--out /tmp/hac-bench]``
(``--ckpt`` and ``--calib`` to judge a trained checkpoint on real clips.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def markdown(doc: dict) -> str:
    from hac_export.bench.report import peaks_line

    m = doc["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['date']}.",
        f"Model: {doc['model']['config']['backbone']}, k={doc['model']['k']}, {doc['model']['image_size']} px, "
        f"{doc['model']['gflops_per_clip']} GFLOP per clip, {'trained' if doc['model']['trained'] else 'untrained (seeded)'}. "
        f"Inputs: {doc['inputs']}.",
        f"Baseline: {doc['baseline']}. P{peaks_line(doc['peak'])[1:]}.",
        "",
        "| engine | format | precision | batch | status | MB | p50 ms | p90 ms | p99 ms | clips/s | frames/s | speedup vs eager | % of peak (its precision) | max abs | top-1 agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    def times(v):
        return "—" if v is None else f"{v:.2f}×"

    def pct(v):
        return "—" if v is None else f"{100 * v:.0f}%"

    for r in doc["results"]:
        p = r.get("parity") or {}
        lines.append(
            f"| {r['engine']} | {r['format']} | {r['precision']} | {r['batch']} | {r['status']} | {f(r['size_mb'], '.1f')} | "
            f"{f(r['p50_ms'], '.1f')} | {f(r['p90_ms'], '.1f')} | {f(r['p99_ms'], '.1f')} | {f(r['clips_per_s'], '.2f')} | "
            f"{f(r.get('frames_per_s'), '.1f')} | {times(r['speedup_vs_eager'])} | "
            f"{pct(r.get('peak_fraction'))} | "
            f"{f(p.get('max_abs'), '.1e')} | {f(p.get('top1_agree'), '.3f')} |")
    reasons = {(r["engine"], r["format"], r["precision"]): r["reason"] for r in doc["results"] if r.get("reason")}
    if reasons:
        lines.append("")
        lines += [f"- {e}/{fm}/{pr}: {why}" for (e, fm, pr), why in reasons.items()]
    for n in doc.get("notes", []):
        lines += ["", f"Note: {n}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    from hac_export.bench.run import run_bench

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--calib")
    ap.add_argument("--engine", default="all")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default="/tmp/hac-bench")
    ap.add_argument("--json", default=str(HERE / "engines.json"))
    a = ap.parse_args()
    doc = run_bench(a.ckpt, engines=a.engine, batches=a.batch, calib=a.calib, out=a.out, json_path=a.json,
                    plot=str(HERE / "engines.png"), seconds=a.seconds)
    print(markdown(doc))


if __name__ == "__main__":
    main()
