"""ONNX Runtime CPU latency of the paper's configuration (ResNet50, k=5, 224 px): FP32, mixed FP16, INT8 QDQ
(U8 and S8 activations), and the same FP32 graph after a graph simplifier (onnxslim, onnxsim).
Eager PyTorch is the closeness reference; its speed against the engines is hac-bench's job.

    python benchmarks/export_speed.py [--runs 15] [--md benchmarks/export.md]

Weights are random (seeded; no download): the numbers are speed, and closeness to the FP32 ONNX on real-photo
clips (cosine, max |Δ|) — not accuracy. INT8 calibration uses 16 real-photo clips (skimage.data). The simplifier
rows run only where ``onnxslim`` / ``onnxsim`` are importable (neither is a dependency:
``pip install --no-deps --target DIR onnxslim onnxsim`` and put DIR on PYTHONPATH).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from hac_export.fp16 import convert_mixed_fp16
from hac_export.int8 import quantize_int8
from hac_export.onnx import export_onnx, trunk_nodes
from hac_runtime.spec import IMAGENET_MEAN, IMAGENET_STD
from hac_train.model import HACConfig, HACNet

K, SIZE = 5, 224


def real_clips(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``n`` normalised clips of random crops of real photos (skimage.data)."""
    import cv2
    from skimage import data

    from hac_runtime.clips import normalize

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    clips = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        frames = []
        for _ in range(K):
            side = int(min(h, w) * rng.uniform(0.6, 0.9))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            frames.append(cv2.resize(photo[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA))
        clips.append(normalize(np.stack(frames), IMAGENET_MEAN, IMAGENET_STD))
    return np.stack(clips).astype(np.float32)


def interleaved_ms(fns: dict, runs: int) -> dict:
    """Median ms per call of each function, timed round-robin so that load from other processes hits all alike."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def closeness(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
    return float(cos.min()), float(np.abs(out - ref).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--md", type=Path, help="append the results table to this Markdown file")
    ap.add_argument("--backbone", default="resnet50", help="smaller for a quick check, e.g. resnet18")
    ap.add_argument("--size", type=int, default=SIZE)
    args = ap.parse_args()
    size = args.size

    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone=args.backbone, num_classes=7, k=K)).eval()
    calib, test = real_clips(16, 0, size), real_clips(8, 1, size)
    x1 = test[:1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "hac.onnx"
        t = time.perf_counter()
        export_onnx(model, fp32, K, size)
        print(f"export {time.perf_counter() - t:.0f} s")
        graph = onnx.load(str(fp32))
        exclude = [n.name for n in graph.graph.node if n.name not in trunk_nodes(graph)]
        variants = {"ONNX FP32": fp32}
        convert_mixed_fp16(fp32, tmp / "hac.fp16.onnx")
        variants["ONNX mixed FP16 (trunk)"] = tmp / "hac.fp16.onnx"
        for act in ("u8", "s8"):
            path = tmp / f"hac.int8.{act}.onnx"
            quantize_int8(fp32, path, calib, exclude, "minmax", act)
            variants[f"ONNX INT8 QDQ, {act.upper()} activations"] = path
        try:
            import onnxslim

            onnx.save(onnxslim.slim(str(fp32)), str(tmp / "hac.slim.onnx"))
            variants[f"ONNX FP32 + onnxslim {onnxslim.__version__}"] = tmp / "hac.slim.onnx"
        except ImportError:
            print("onnxslim not importable: its row is skipped")
        try:
            import onnxsim

            simplified, ok = onnxsim.simplify(onnx.load(str(fp32)))
            if ok:
                onnx.save(simplified, str(tmp / "hac.sim.onnx"))
                variants[f"ONNX FP32 + onnxsim {onnxsim.__version__}"] = tmp / "hac.sim.onnx"
        except ImportError:
            print("onnxsim not importable: its row is skipped")

        with torch.no_grad():
            ref = model(torch.from_numpy(test)).numpy()
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle sessions must not spin
        sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for name, path in variants.items()}
        fns = {name: (lambda s=s: s.run(None, {"clips": x1})) for name, s in sessions.items()}
        ms = interleaved_ms(fns, args.runs)
        base = ms["ONNX FP32"]
        for name, path in variants.items():
            cos, max_abs = closeness(sessions[name].run(None, {"clips": test})[0], ref)
            nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
            rows.append((f"{name} ({nodes} nodes, {path.stat().st_size / 1e6:.0f} MB)", ms[name], cos, max_abs,
                         f"{base / ms[name]:.2f}x"))

    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        model_name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    lines = [
        f"\n### {time.strftime('%Y-%m-%d')} — {model_name}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} at the end; {args.backbone}",
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}; "
        f"batch 1 clip (k={K}, {size} px), median of {args.runs} interleaved runs; closeness on 8 real-photo clips "
        "vs eager FP32.",
        "",
        "| model | ms / clip | cosine min | max abs Δ | speed vs ONNX FP32 |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {ms:.1f} | {cos:.6f} | {d:.2e} | {s} |" for n, ms, cos, d, s in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
