"""Training benchmarks on synthetic data (no licensed dataset needed); results go to benchmarks/train.md.

1. ``hac-synth --clips 140`` then the README's run — ``hac-train S --dataset folders --backbone resnet18
   --image-size 112 --epochs 12 --folds 1`` — for the full model and the paper's two control groups
   (``--attention none``: ResNet + GRU; ``--temporal none``: ResNet + hybrid attention): held-out accuracy
   (one identity never seen in training), macro-F1, AUC, wall time.
2. Training throughput (clips/s, forward + backward + SGD step) of the HAC network on this CPU, FP32 and
   bf16 autocast, and the end-to-end clips/s of the runs above (data loading and augmentation included).

    python benchmarks/train.py [--work DIR] [--groups hac,control-1,control-2] [--skip-runs] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def machine() -> dict:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torchvision

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_at_start": os.getloadavg()[0]}


def throughput(backbone="resnet18", size=112, k=5, batch=8, steps=6, bf16=False, channels_last=False) -> float:
    from hac_train.model import HACConfig, HACNet

    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone=backbone, num_classes=7, k=k)).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(batch, k, 3, size, size), torch.randint(0, 7, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/hac-train-bench")
    ap.add_argument("--groups", default="hac,control-1,control-2")
    ap.add_argument("--clips", type=int, default=140)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--skip-runs", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from hac_train.api import synth
    from hac_train.sweep import ablation

    work = Path(a.work)
    result = {"machine": machine(), "throughput": [], "runs": []}
    for bf16 in (False, True):
        cps = throughput(bf16=bf16)
        result["throughput"].append({"model": "resnet18 112px k=5 batch 8", "bf16": bf16, "clips_per_s": cps})
        print(f"throughput resnet18@112 k=5 batch 8 bf16={bf16}: {cps:.2f} clips/s", flush=True)
    if not a.skip_runs:
        data = work / "S"
        if not (data / "manifest.csv").exists():
            t0 = time.perf_counter()
            synth(data, clips=a.clips, seed=0, progress=False)
            result["synth_seconds"] = time.perf_counter() - t0
        groups = a.groups.split(",")
        t0 = time.perf_counter()
        comp = ablation(data, work / "runs", groups=groups, dataset="folders", backbone="resnet18", image_size=112,
                        epochs=a.epochs, folds=1, device="cpu", resume=(work / "runs").exists(), progress=True)
        result["sweep_seconds"] = time.perf_counter() - t0
        for row in comp["rows"]:
            m = json.loads((work / "runs" / row["name"] / "metrics.json").read_text())
            secs = sum(h["seconds"] for h in m["history"])
            result["runs"].append({**row, "train_seconds": secs, "best_epoch": m["best_epoch"],
                                   "val_clips": m["val_clips"], "train_clips": m["train_clips"],
                                   "mean_train_clips_per_s": sum(h["train_clips_per_s"] for h in m["history"]) / len(m["history"])})
            print(row["name"], f"acc {row['accuracy']:.3f} macro-F1 {row['macro_f1']:.3f} AUC {row['auc_macro']:.3f} "
                  f"{secs:.0f} s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
