"""This machine's attainable FP32 peak, measured in the same run as the benchmark.

The best of a large MatMul and a large convolution in ONNX Runtime (the
"roofline" the engines are judged against; MKL's ``torch.mm`` reaches only
about half of it on AMD CPUs, so it is not used) and, on a GPU, of ``torch.mm``.
The convolution takes a batch of frames, as the model's trunk does. ``hac-bench``
probes before and after its timings and keeps the best (``best_peak``): a probe
that ran while the machine was briefly busy must not make the engines look
better than the hardware allows.
"""
from __future__ import annotations

import numpy as np

from hac_export.bench.timing import measure_interleaved, warm_up


def _matmul_model(n: int):
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul", [a, b], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_model(c: int, hw: int, n: int = 1):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((c, c, 3, 3)).astype(np.float32) * 0.01, "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, c, hw, hw])
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "conv", [x], [y], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure_cpu_peak(seconds: float = 2.0, settle: float = 0.05) -> dict:
    """GFLOP/s of ORT MatMul (2048²) and a 3×3 conv (4 frames, 256 ch, 56²); ``peak_gflops`` is the better."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    n, c, hw, frames = 2048, 256, 56, 4
    mm = ort.InferenceSession(_matmul_model(n).SerializeToString(), providers=["CPUExecutionProvider"])
    conv = ort.InferenceSession(_conv_model(c, hw, frames).SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    x = rng.standard_normal((frames, c, hw, hw), np.float32)
    fns = {"matmul": lambda: mm.run(None, {"a": a, "b": b}), "conv": lambda: conv.run(None, {"x": x})}
    for f in fns.values():  # ORT's first calls pick kernels and touch memory: warm up properly
        warm_up(f, seconds / 2, min_calls=4)
    times = measure_interleaved(fns, min_rounds=8, min_seconds=seconds, settle=settle)
    flops = {"matmul": 2.0 * n ** 3, "conv": 2.0 * frames * c * c * 9 * hw * hw}
    gflops = {k: flops[k] / float(np.min(v)) / 1e9 for k, v in times.items()}
    return {"matmul_gflops": round(gflops["matmul"], 1), "conv_gflops": round(gflops["conv"], 1),
            "peak_gflops": round(max(gflops.values()), 1),
            "how": "best of ORT MatMul 2048² and Conv 3×3 256ch 56² ×4 frames, FP32"}


def best_peak(*probes: dict) -> dict:
    """Several probes of the same kind → one, each figure the best seen (``probes`` counts them)."""
    out = dict(probes[0])
    for p in probes[1:]:
        for key, value in p.items():
            if key.endswith("_gflops"):
                out[key] = max(out[key], value)
    out["probes"] = len(probes)
    return out


def measure_gpu_peak(seconds: float = 1.0) -> dict:
    """FP32 and FP16 GFLOP/s of ``torch.mm`` (8192²) on the current CUDA device, timed with CUDA events."""
    import torch

    n = 8192
    out = {}
    for dtype, key in ((torch.float32, "fp32_gflops"), (torch.float16, "fp16_gflops")):
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(10):
            start.record()
            a @ b
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        out[key] = round(2.0 * n ** 3 / best / 1e9, 1)
    out["peak_gflops"] = out["fp32_gflops"]
    out["how"] = "torch.mm 8192², CUDA events (TF32 as PyTorch defaults)"
    return out
