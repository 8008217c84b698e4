"""Triton vs in-process ORT: N concurrent clients, each sending one clip per request in a closed loop.

Each client is a process holding the engine ``hac-run`` would hold: ``--engine triton`` (a gRPC client of one
local ``tritonserver``, its Python backend running the same ONNX with ONNX Runtime, dynamic batching on) or
``--engine ort`` (its own ONNX Runtime session in-process). For 1, 4 and 8 clients: throughput (clips/s, all
clients together) and per-request latency p50/p99, measured in one run on this machine. The model is
untrained (speed does not depend on the weights): ResNet18-HAC, k = 5, 112 px, exported by hac-export.

    .venv/bin/python benchmarks/triton_serving.py --seconds 20 --json benchmarks/triton.json   # writes triton.md too

Needs the server's own venv (``tests/fixtures_triton.py``: ``$HAC_TRITON_VENV`` or built once).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def client(kind: str, model: str, seconds: float, start_at: float, queue) -> None:
    from hac_runtime.engines import load_engine
    from hac_runtime.engines.triton.runner import TritonEngine

    engine = TritonEngine(model, timeout=60) if kind == "triton" else load_engine(model, "ort", "cpu")
    x = np.random.default_rng(0).standard_normal((1, *engine.input_shape[1:])).astype(np.float32)
    for _ in range(2):
        engine.infer(x)
    while time.time() < start_at:  # every client starts measuring together
        time.sleep(0.01)
    lat, end = [], start_at + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        engine.infer(x)
        lat.append(time.perf_counter() - t0)
    engine.close()
    queue.put(lat)


def measure(kind: str, model: str, clients: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 8.0 + 1.5 * clients  # time for every client to load and warm up
    procs = [ctx.Process(target=client, args=(kind, model, seconds, start_at, q)) for _ in range(clients)]
    for p in procs:
        p.start()
    lats = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    every = np.concatenate([np.asarray(v) for v in lats]) * 1000
    return {"engine": kind, "clients": clients, "requests": int(every.size),
            "clips_per_s": round(every.size / seconds, 2),
            "p50_ms": round(float(np.percentile(every, 50)), 1), "p99_ms": round(float(np.percentile(every, 99)), 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "triton.json")
    args = ap.parse_args()
    import onnxruntime
    import torch

    from fixtures_triton import TritonServer, server_venv
    from hac_export.api import export
    from hac_runtime.machine import cpu_name
    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import save_checkpoint
    from hac_train.model import HACConfig, HACNet

    venv, why = server_venv()
    if venv is None:
        sys.exit(f"triton_serving.py: {why}")
    work = Path(tempfile.mkdtemp(prefix="hac-triton-bench-"))
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=7, k=5)).eval()
    save_checkpoint(work / "ckpt.pt", model, [f"c{i}" for i in range(7)], Preprocess(112, 5))
    report = export(work / "ckpt.pt", formats="triton", triton_backend="python", batch="1:8:8", out=work,
                    verbose=False)
    rows = []
    with TritonServer(venv, report.path("triton")) as srv:
        url = srv.grpc_url("hac_onnx_fp32")
        for n in [int(c) for c in args.clients.split(",")]:
            for kind, target in (("ort", str(report.path("onnx"))), ("triton", url)):
                rows.append(measure(kind, target, n, args.seconds))
                print(rows[-1], flush=True)
    by = {(r["engine"], r["clients"]): r for r in rows}
    for r in rows:
        base = by[("ort", r["clients"])]
        r["throughput_vs_ort"] = round(r["clips_per_s"] / base["clips_per_s"], 2)
        r["p50_vs_ort"] = round(r["p50_ms"] / base["p50_ms"], 2)
    facts = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
             "cores": mp.cpu_count(), "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
             "tritonserver": "2.51 (nvidia-pytriton 0.7.0), Python backend + ONNX Runtime, 1 instance, 2 threads",
             "model": "ResNet18-HAC, k=5, 112 px, FP32 ONNX (untrained)", "seconds_per_row": args.seconds}
    args.json.write_text(json.dumps({"machine": facts, "results": rows}, indent=2) + "\n")
    lines = ["| engine | clients | clips/s | p50 ms | p99 ms | throughput vs ORT | p50 vs ORT |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['clients']} | {r['clips_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['throughput_vs_ort']}× | {r['p50_vs_ort']}× |" for r in rows]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
