"""The INT8 peak's candidate probes and ONNX Runtime's CPU arena, measured as ``openvino.md`` records (issue 14).

    .venv/bin/python benchmarks/cpu_probes.py [--work DIR] [--seconds 4]

1. INT8 rates, each in its steady state (``peak.steady_times``), in one process: ``torch._int_mm`` 2048², ORT's and
   OpenVINO's QDQ MatMul 2048², OpenVINO's QDQ convolution (the peak's, on 4 and 16 frames).
2. The default model's FP32 and INT8 ONNX (hac-bench's, exported into ``--work`` when missing) in ORT: resident
   memory after a batch of 1 and of 8 clips (each kind in a process of its own) and the medians of interleaved
   calls, for sessions with their own arena and sessions sharing the process's (``ort.loader.cpu_session_options``).
3. The INT8 ONNX fed one clip at a time (a call every 0.35 s, as the pipeline feeds its engine), interleaved in one
   process: an ORT session whose workers spin between calls against one whose workers sleep (``spin=False``), and
   OpenVINO's where installed: median latency and process CPU a call (``pipeline.md``, 2026-12-04).

``--part`` runs one of the three (``int8``, ``arena``, ``spinning``); all by default.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> int:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024


def _qdq_matmul(n: int):
    """A static QDQ MatMul ``n``² (int8 weights and activations), built as ``peak._qdq_conv_model`` builds its conv."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = [numpy_helper.from_array(rng.integers(-127, 128, (n, n)).astype(np.int8), "w"),
              numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
              numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
              numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
              numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["yc"]),
             helper.make_node("QuantizeLinear", ["yc", "ys", "z"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    return helper.make_model(helper.make_graph(nodes, "qdq_matmul", [x], [y], initializer=consts),
                             opset_imports=[helper.make_opsetid("", 17)])


def int8_rates(seconds: float) -> dict[str, float]:
    import onnx
    import onnxruntime as ort
    import torch

    from hac_export.bench.peak import _qdq_conv_model, _torch_gemm, steady_times

    n, rng = 2048, np.random.default_rng(0)
    fns, flops = {}, {}
    gemm = _torch_gemm(torch.int8, n)
    if gemm is not None:
        fns["torch._int_mm"], side = gemm
        flops["torch._int_mm"] = 2.0 * side ** 3
    xm = rng.standard_normal((n, n), np.float32)
    s = ort.InferenceSession(_qdq_matmul(n).SerializeToString(), providers=["CPUExecutionProvider"])
    fns["ORT QDQ MatMul"], flops["ORT QDQ MatMul"] = (lambda: s.run(None, {"x": xm})), 2.0 * n ** 3
    if importlib.util.find_spec("openvino") is not None:
        from hac_runtime.engines.openvino.loader import compile_onnx

        tmp = Path(tempfile.mkdtemp(prefix="hac-probes-"))

        def request(model, name):
            onnx.save(model, tmp / f"{name}.onnx")
            return compile_onnx(tmp / f"{name}.onnx", "int8")[0].create_infer_request()

        r = request(_qdq_matmul(n), "mm")
        fns["OpenVINO QDQ MatMul"], flops["OpenVINO QDQ MatMul"] = (lambda: r.infer({0: xm})), 2.0 * n ** 3
        c, hw = 256, 56
        for frames in (4, 16):
            x = rng.standard_normal((frames, c, hw, hw), np.float32)
            rc = request(_qdq_conv_model(c, hw, frames), f"conv{frames}")
            name = f"OpenVINO QDQ conv ×{frames} frames"
            fns[name], flops[name] = (lambda rc=rc, x=x: rc.infer({0: x})), 2.0 * frames * c * c * 9 * hw * hw
    times = steady_times(fns, seconds)
    return {k: round(flops[k] / float(v.min()) / 1e9, 1) for k, v in times.items()}


def arena_memory(work: Path, shared: bool) -> str:
    """Resident memory the FP32 and INT8 sessions add after batches of 1 and then of 8 (run in a process of its own:
    memory one session freed would be counted for the next)."""
    import onnxruntime as ort

    from hac_runtime.engines.ort.loader import cpu_session_options

    x = np.random.default_rng(0).random((8, 5, 3, 224, 224), np.float32)
    r0 = rss_mb()
    sessions = [ort.InferenceSession(str(work / f), cpu_session_options(ort) if shared else None,
                                     providers=["CPUExecutionProvider"]) for f in ("hac.onnx", "hac.int8.onnx")]
    name = sessions[0].get_inputs()[0].name
    grown = {}
    for b, rounds in ((1, 4), (8, 2)):  # several calls, as a benchmark's warm-up makes: an arena may grow again
        for _ in range(rounds):
            for s in sessions:
                s.run(None, {name: x[:b]})
        grown[b] = rss_mb() - r0
    return (f"{'shared' if shared else 'own'} arenas, FP32 + INT8 sessions: +{grown[1]} MB after a batch of 1, "
            f"+{grown[8]} MB after a batch of 8 ({grown[8] - grown[1]} MB more)")


def ort_arena(work: Path) -> list[str]:
    """``arena_memory`` for both kinds, each in a child process, and the interleaved speed of own-arena against
    shared-arena sessions in this one."""
    import subprocess

    import onnxruntime as ort

    from hac_runtime.engines.ort.loader import cpu_session_options

    lines = [subprocess.run([sys.executable, __file__, "--work", str(work), "--memory", kind], check=True,
                            capture_output=True, text=True).stdout.strip() for kind in ("own", "shared")]
    x = np.random.default_rng(0).random((8, 5, 3, 224, 224), np.float32)
    for f in ("hac.onnx", "hac.int8.onnx"):
        pair = {"own": ort.InferenceSession(str(work / f), providers=["CPUExecutionProvider"]),
                "shared": ort.InferenceSession(str(work / f), cpu_session_options(ort),
                                               providers=["CPUExecutionProvider"])}
        name = pair["own"].get_inputs()[0].name
        for b, rounds in ((1, 12), (8, 4)):
            times = {k: [] for k in pair}
            for r in range(rounds):
                for k, s in (pair.items() if r % 2 else reversed(pair.items())):
                    time.sleep(0.05)
                    t0 = time.perf_counter()
                    s.run(None, {name: x[:b]})
                    times[k].append(time.perf_counter() - t0)
            med = {k: 1e3 * float(np.median(v[1:])) for k, v in times.items()}
            lines.append(f"{f} batch {b}: own {med['own']:.1f} ms, shared {med['shared']:.1f} ms "
                         f"(shared/own {med['shared'] / med['own']:.3f})")
    return lines


def sparse_calls(work: Path, calls: int = 40) -> list[str]:
    """Latency and process CPU of a call every 0.35 s, alternating between the sessions; the 0.15 s after each call
    counts to it (a spinning pool goes on spinning after it returns)."""
    import onnxruntime as ort

    from hac_runtime.engines.ort.loader import cpu_session_options

    path = work / "hac.int8.onnx"
    x = np.random.default_rng(0).standard_normal((1, 5, 3, 224, 224), np.float32)
    runs = {}
    for label, spin in (("ORT, workers spin", True), ("ORT, workers sleep", False)):
        session = ort.InferenceSession(str(path), cpu_session_options(ort, spin), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        runs[label] = lambda s=session, n=name: s.run(None, {n: x})
    if importlib.util.find_spec("openvino") is not None:
        from hac_runtime.engines.openvino.loader import compile_onnx

        request = compile_onnx(path, "int8")[0].create_infer_request()
        runs["OpenVINO"] = lambda: request.infer([x])
    for run in runs.values():
        for _ in range(3):
            run()
    latency, cpu = {k: [] for k in runs}, {k: [] for k in runs}
    order = list(runs)
    for i in range(calls):
        for label in (order if i % 2 == 0 else order[::-1]):
            time.sleep(0.2)
            c0, t0 = time.process_time(), time.perf_counter()
            runs[label]()
            latency[label].append(1e3 * (time.perf_counter() - t0))
            time.sleep(0.15)
            cpu[label].append(1e3 * (time.process_time() - c0))
    return [f"{label}, a call every 0.35 s: latency median {np.median(latency[label]):.1f} ms (p10 "
            f"{np.percentile(latency[label], 10):.1f}, p90 {np.percentile(latency[label], 90):.1f}), process CPU a "
            f"call median {np.median(cpu[label]):.1f} ms" for label in runs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hac-bench"))
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--part", choices=["int8", "arena", "spinning"], help="one part only (module doc)")
    ap.add_argument("--memory", choices=["own", "shared"], help=argparse.SUPPRESS)  # ort_arena's child process
    args = ap.parse_args(argv)
    if args.memory:
        print(arena_memory(Path(args.work), args.memory == "shared"))
        return 0
    import platform

    import onnxruntime
    import torch

    print(f"{platform.processor() or platform.machine()}; torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.part in (None, "int8"):
        for name, rate in int8_rates(args.seconds).items():
            print(f"{name}: {rate} GOP/s")
    if args.part == "int8":
        return 0
    work = Path(args.work)
    if not (work / "hac.int8.onnx").exists():
        from hac_export.api import export
        from hac_export.bench.run import default_checkpoint
        from hac_export.parity_inputs import synthetic_clips

        work.mkdir(parents=True, exist_ok=True)
        export(default_checkpoint(work), formats="onnx", int8=True, calib=synthetic_clips(work, 224),
               batch="1:8:8", out=work, verbose=False)
    for line in (ort_arena(work) if args.part in (None, "arena") else []) + (
            sparse_calls(work) if args.part in (None, "spinning") else []):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
