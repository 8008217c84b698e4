"""AOTInductor BF16 on this CPU against ONNX Runtime FP32 and eager, on the ResNet50 default (issue 14's BF16 goal).

    .venv/bin/python benchmarks/aoti_cpu.py [--out DIR] [--seconds 20]

Exports the built-in default model (hac-bench's) as ONNX FP32 and an AOTInductor mixed BF16 package (trunk
BF16; attention, GRU, FC FP32), both parity-checked by hac-export on hac-synth clips, then times eager FP32,
ORT FP32 and AOTI BF16 at batch 1, interleaved in one process; writes ``aoti_cpu.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("hac-aoti-cpu"))
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    import torch

    from hac_export.api import export
    from hac_export.bench.run import default_checkpoint, machine_facts
    from hac_export.bench.timing import measure_interleaved, percentiles_ms, warm_up
    from hac_runtime.engines import load_engine
    from hac_train.checkpoint import load_checkpoint

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = default_checkpoint(args.out)
    t0 = time.perf_counter()
    report = export(ckpt, formats="onnx,aoti", bf16=True, batch="1:1:2", out=args.out, verbose=False)
    export_s = time.perf_counter() - t0
    if report.failed:
        print(report.failure(), file=sys.stderr)
        return 1
    model, _ = load_checkpoint(ckpt)
    model.eval()
    x = np.random.default_rng(0).standard_normal((1, 5, 3, 224, 224)).astype(np.float32)
    tx = torch.from_numpy(x)
    ort32 = load_engine(report.path("onnx", "fp32"), device="cpu")
    bf16 = load_engine(report.path("aoti", "bf16"), device="cpu")

    def eager():
        with torch.inference_mode():
            model(tx)

    fns = {"eager fp32": eager, "ort fp32": lambda: ort32.infer(x), "aoti bf16": lambda: bf16.infer(x)}
    for f in fns.values():
        warm_up(f, 3.0)
    times = measure_interleaved(fns, min_rounds=7, min_seconds=args.seconds, settle=0.05)
    p50 = {k: percentiles_ms(v)["p50_ms"] for k, v in times.items()}
    parity = {a["precision"] + " " + a["format"]: {k: a["parity"][k] for k in ("max_abs", "cosine_min", "top1_agree")}
              for a in report.artifacts}
    doc = {"machine": machine_facts(), "export_seconds": round(export_s, 1), "p50_ms": p50,
           "aoti_bf16_vs_ort_fp32": round(p50["ort fp32"] / p50["aoti bf16"], 2),
           "aoti_bf16_vs_eager": round(p50["eager fp32"] / p50["aoti bf16"], 2), "parity": parity,
           "rounds": int(len(times["eager fp32"]))}
    (args.out / "aoti_cpu.json").write_text(json.dumps(doc, indent=2))
    for k, v in p50.items():
        print(f"{k:12s} p50 {v:8.1f} ms")
    print(f"AOTI BF16 vs ORT FP32: {doc['aoti_bf16_vs_ort_fp32']}x; vs eager: {doc['aoti_bf16_vs_eager']}x; parity {parity}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
