"""Control groups (§4.5) in one sweep: the full model and the paper's ablations, trained alike, one table.

* ``hac``: ResNet + hybrid attention + GRU (the proposed network)
* ``control-1``: ResNet + GRU, no attention (the paper's control group 1)
* ``control-2``: ResNet + hybrid attention, no GRU (control group 2)
* ``self-attention``: ResNet + self-attention only + GRU (Fig. 5's comparison)

Each goes to ``RUN/<name>/`` (a normal run folder); ``RUN/comparison.json`` and
``RUN/comparison.md`` compare them. ``--resume`` continues the sweep.
"""
from __future__ import annotations

import json
from pathlib import Path

from hac_runtime.atomic import atomic_path, write_json
from hac_runtime.progress import console

CONTROL_GROUPS = {
    "hac": {"attention": "hybrid", "temporal": "gru"},
    "control-1": {"attention": "none", "temporal": "gru"},
    "control-2": {"attention": "hybrid", "temporal": "none"},
    "self-attention": {"attention": "self", "temporal": "gru"},
}
DESCRIPTION = {"hac": "ResNet + hybrid attention + GRU", "control-1": "ResNet + GRU (no attention)",
               "control-2": "ResNet + hybrid attention (no GRU)", "self-attention": "ResNet + self-attention + GRU"}


def _headline(m: dict) -> dict:
    if "summary" in m:
        s = m["summary"]
        return {"accuracy": s["accuracy"]["mean"], "accuracy_std": s["accuracy"]["std"],
                "macro_f1": s["macro_f1"]["mean"], "auc_macro": s["auc_macro"]["mean"]}
    return {"accuracy": m["accuracy"], "accuracy_std": None, "macro_f1": m["macro_f1"], "auc_macro": m["auc"]["macro"]}


def ablation(data, out, groups=None, resume: bool = False, progress: bool = True, **train_kw) -> dict:
    """Train every control group with the same data, splits, recipe and seed; returns the comparison."""
    from hac_train.api import train

    out = Path(out)
    rows = []
    for name in groups or CONTROL_GROUPS:
        run = out / name
        m_path = run / "metrics.json"
        if resume and m_path.is_file() and json.loads(m_path.read_text()).get("complete"):
            m = json.loads(m_path.read_text())
        else:
            if progress:
                console().print(f"[bold]{name}[/bold]: {DESCRIPTION[name]}")
            m = train(data, run, resume=resume and (run / "run.json").exists(), progress=progress,
                      **CONTROL_GROUPS[name], **train_kw)
        if m is None:  # a DDP rank other than 0
            continue
        rows.append({"name": name, "model": DESCRIPTION[name], **CONTROL_GROUPS[name], **_headline(m)})
    if not rows:
        return {}
    result = {"format": "hac-ablation/1", "data": str(data), "rows": rows}
    write_json(out / "comparison.json", result)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(comparison_table(rows))
    if progress:
        console().print(comparison_table(rows))
    return result


def comparison_table(rows) -> str:
    def pct(v, sd=None):
        if v is None:
            return "–"
        return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")

    lines = ["| run | model | attention | temporal | accuracy % | macro-F1 % | AUC (macro) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        auc = "–" if r["auc_macro"] is None else f"{r['auc_macro']:.3f}"
        lines.append(f"| {r['name']} | {r['model']} | {r['attention']} | {r['temporal']} | "
                     f"{pct(r['accuracy'], r['accuracy_std'])} | {pct(r['macro_f1'])} | {auc} |")
    return "\n".join(lines) + "\n"
