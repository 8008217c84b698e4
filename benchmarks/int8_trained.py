"""Judge ONNX Runtime INT8 on a *trained* checkpoint: calibrate on the clips of the manifest's ``train`` split,
judge it with the export's parity gate (max_abs, logit error over the logit range, cosine, top-1;
``hac_export.parity.TOLERANCES``) against eager FP32 on every clip and on the clips calibration never saw, time FP32 and INT8 in one
interleaved run.

Run (the data: ``hac-synth`` + ``hac-train``, see benchmarks/int8.md for the exact commands)::

    .venv/bin/python benchmarks/int8_trained.py --ckpt R/ckpt.pt --data S --out /tmp/hac-int8 --json benchmarks/int8.json

``--data`` is a dataset with a ``manifest.csv`` (path, label, subject, split) whose faces ``hac-train`` cached
under ``DATA/.hac-cache/sequence-<size>/<clip>/``. Calibration never sees the ``test`` split's identity.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np


def clip_table(data: Path, size: int) -> list[dict]:
    """manifest rows with the cached face folder of each clip (rows without one are dropped)."""
    cache = data / ".hac-cache" / f"sequence-{size}"
    rows = []
    with open(data / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            folder = cache / Path(row["path"]).stem
            if folder.is_dir() and any(folder.glob("*.png")):
                rows.append({**row, "folder": folder})
    if not rows:
        raise SystemExit(f"{cache}: no cached faces (train on {data} once at {size} px first)")
    return rows


def linked_set(rows: list[dict], dst: Path) -> Path:
    """``dst/<label>/<clip>``: copies of the cached faces, the layout hac-export's --calib reads labels from."""
    for r in rows:
        clip = dst / r["label"] / r["folder"].name
        if not clip.exists():
            shutil.copytree(r["folder"], clip)
    return dst


def main() -> None:
    import torch

    from hac_export.api import export
    from hac_export.bench.timing import measure_interleaved, percentiles_ms, warm_up
    from hac_export.int8 import load_clips
    from hac_export.parity import compare, tolerance_for
    from hac_runtime.engines import load_engine
    from hac_train.checkpoint import load_checkpoint

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="/tmp/hac-int8")
    ap.add_argument("--json")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    out = Path(args.out)
    model, ckpt = load_checkpoint(args.ckpt)
    model.eval()
    pre, classes = ckpt["preprocess"], ckpt["classes"]
    rows = clip_table(Path(args.data), pre.image_size)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] != "train"]
    calib = linked_set(train, out / "calib")
    judge_all = linked_set(rows, out / "all")
    judge_test = linked_set(test, out / "test")
    print(f"{len(train)} calibration clips ({', '.join(sorted({r['subject'] for r in train}))}), "
          f"{len(test)} clips kept out of calibration ({', '.join(sorted({r['subject'] for r in test}))})", flush=True)

    t0 = time.perf_counter()
    report = export(args.ckpt, formats="onnx", int8=True, calib=calib, batch="1:8:8", out=out / "engines", verbose=False)
    gate = {a["name"]: {k: a["parity"][k] for k in ("passed", "max_abs", "logit_err_rel", "cosine_min", "top1_agree", "n")}
            for a in report.artifacts}
    print("export gate (calibration clips, batch 1 and 8):", gate, flush=True)
    export_s = time.perf_counter() - t0
    fp32 = load_engine(report.path("onnx", "fp32"))
    int8 = load_engine(report.path("onnx", "int8"))

    def logits(infer, x):
        return np.concatenate([infer(x[i:i + 8]) for i in range(0, len(x), 8)])

    judged = {}
    for name, folder in (("all clips", judge_all), ("not in calibration", judge_test)):
        clips = load_clips(folder, pre, classes)
        with torch.inference_mode():
            ref = logits(lambda b: model(torch.from_numpy(b)).numpy(), clips.x)
        out_fp32, out_int8 = logits(fp32.infer, clips.x), logits(int8.infer, clips.x)
        spread = float(ref.max() - ref.min())
        v32 = compare(ref, out_fp32, tolerance_for("fp32"), spread)
        v8 = compare(ref, out_int8, tolerance_for("int8"), spread)
        judged[name] = {
            "clips": int(len(clips.x)),
            "fp32": {k: v32[k] for k in ("passed", "max_abs", "cosine_min", "top1_agree")},
            "int8": {k: v8[k] for k in ("passed", "failures", "max_abs", "logit_err_rel", "cosine_min", "top1_agree")},
            "logit_range_eager": spread,
            "mean_logit_range_per_clip": float((ref.max(1) - ref.min(1)).mean()),
            "accuracy_eager": float((ref.argmax(1) == clips.labels).mean()),
            "accuracy_int8": float((out_int8.argmax(1) == clips.labels).mean()),
        }
        print(name, judged[name], flush=True)

    model = model.to(memory_format=torch.channels_last)
    clips = load_clips(judge_all, pre, classes).x
    timing = []
    for b in [int(v) for v in args.batch.split(",")]:
        xb = np.ascontiguousarray(clips[np.arange(b) % len(clips)])
        tb = torch.from_numpy(xb)

        def eager(tb=tb):
            with torch.inference_mode():
                return model(tb)

        fns = {"eager": eager, "ort fp32": lambda xb=xb: fp32.infer(xb), "ort int8": lambda xb=xb: int8.infer(xb)}
        for f in fns.values():
            warm_up(f, 3.0)
        secs = measure_interleaved(fns, min_rounds=10, min_seconds=args.seconds, settle=0.05)
        p50 = {k: percentiles_ms(v)["p50_ms"] for k, v in secs.items()}
        row = {"batch": b, **{f"{k} p50_ms": round(v, 1) for k, v in p50.items()},
               "ort_fp32_vs_eager": round(p50["eager"] / p50["ort fp32"], 2),
               "int8_vs_ort_fp32": round(p50["ort fp32"] / p50["ort int8"], 2),
               "int8_vs_eager": round(p50["eager"] / p50["ort int8"], 2)}
        timing.append(row)
        print(row, flush=True)

    doc = {"checkpoint": str(args.ckpt), "model": ckpt["model"], "train": ckpt.get("train", {}),
           "preprocess": pre.to_dict(), "quantization": json.loads(Path(str(report.path("onnx", "int8")) + ".json").read_text()).get("quantization"),
           "export_seconds": round(export_s, 1), "export_gate": gate, "judged": judged, "timing": timing,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
