"""This machine's attainable peak per precision, measured in the same run as the benchmark.

Every precision is probed as a large matrix product and as a large convolution,
and its peak is its best probe. FP32: a MatMul and the convolution in ONNX
Runtime (the "roofline" the engines are judged against; MKL's ``torch.mm``
reaches only about half of it on AMD CPUs, so it is not used). INT8:
``torch._int_mm`` (int8 × int8 → int32, oneDNN: VNNI/AMX where the CPU has them)
and the convolution as a QDQ graph, which ONNX Runtime runs as an integer
convolution (as it runs the INT8 artifacts). BF16: ``torch.mm`` in bfloat16
(oneDNN; AVX512-BF16/AMX where the CPU has them). Where OpenVINO is installed and
compiles here, the convolution is also run in it at each precision (FP32, BF16
hint, the QDQ graph). Each kind of probe matters: on a CPU with AMX a peak of
ORT's convolutions alone put OpenVINO INT8 at 188 % "of peak", and one without
an INT8 matrix product at 109 % (at batch 8; ``torch._int_mm`` ran 1.7× OpenVINO's
INT8 convolution there). On a GPU: ``torch.mm`` per precision.
The convolution takes a batch of frames, as the model's trunk does. ``hac-bench``
probes before and after its timings and keeps the best (``best_peak``): a probe
that ran while the machine was briefly busy must not make the engines look
better than the hardware allows.
"""
from __future__ import annotations

import importlib.util
import time

import numpy as np

from hac_export.bench.timing import warm_up
from hac_runtime.errors import one_line


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


def _qdq_conv_model(c: int, hw: int, n: int = 1):
    """The FP32 probe's convolution as a static QDQ graph (int8 weights and activations), as the INT8 ONNX."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = [numpy_helper.from_array(rng.integers(-127, 128, (c, c, 3, 3)).astype(np.int8), "w"),
              numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
              numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
              numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
              numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["yc"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["yc", "ys", "z"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, c, hw, hw])
    graph = helper.make_graph(nodes, "qdq_conv", [x], [y], initializer=consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _openvino_convs(models: dict, x: np.ndarray) -> tuple[dict, str | None]:
    """Callables running the probe ``models`` (precision → ONNX model: ``fp32``, ``bf16`` where the CPU has it,
    ``int8``) on ``x`` in OpenVINO, or ({}, why not) where OpenVINO is missing or cannot compile here."""
    import tempfile
    from pathlib import Path

    import onnx

    from hac_runtime.engines.openvino.loader import compile_onnx
    from hac_runtime.errors import HacError

    if importlib.util.find_spec("openvino") is None:  # optional
        return {}, "OpenVINO not installed"
    fns = {}
    with tempfile.TemporaryDirectory(prefix="hac-peak-") as tmp:
        for precision, model in models.items():
            path = Path(tmp) / f"{precision}.onnx"
            onnx.save(model, path)
            try:
                request = compile_onnx(path, precision)[0].create_infer_request()
            except (HacError, RuntimeError) as e:  # RuntimeError: OpenVINO's own, from a compiled model
                if precision == "bf16" and "no BF16" in str(e):
                    continue  # this CPU has no BF16: torch.mm's emulated rate stands
                return {}, one_line(e)[:160]
            fns[precision] = (lambda r: lambda: r.infer({0: x}))(request)
    return fns, None


def _torch_gemm(dtype, n: int) -> tuple | None:
    """A callable multiplying two ``n``² matrices of ``dtype`` in torch (``torch.bfloat16``: ``torch.mm``;
    ``torch.int8``: ``torch._int_mm``, int32 out) and the side it multiplies, or None where torch refuses it.

    The side is ``n`` where the CPU multiplies the type natively; a CPU without (AVX2 only) emulates BF16
    ~100× slower, and 2048² took minutes a call there: 512² (a quarter of a second) measures the same rate."""
    import torch

    def operands(side: int):
        g = torch.Generator().manual_seed(0)
        if dtype == torch.int8:
            return [torch.randint(-127, 128, (side, side), dtype=torch.int8, generator=g) for _ in range(2)]
        return [torch.randn(side, side, generator=g).to(dtype) for _ in range(2)]

    multiply = torch._int_mm if dtype == torch.int8 else torch.mm
    try:
        small = operands(512)
        multiply(*small)  # the first call also builds the kernel (oneDNN's JIT: ~20 ms for int8 here)
        t0 = time.perf_counter()
        multiply(*small)
    except RuntimeError:  # e.g. a torch build without an int8 matrix product for this CPU
        return None
    side = n if time.perf_counter() - t0 < 0.01 else 512
    a, b = operands(side) if side != 512 else small
    return (lambda: multiply(a, b)), side


def steady_times(fns: dict, seconds: float = 2.0, rounds: int = 2) -> dict[str, np.ndarray]:
    """Per-call seconds of each probe in its steady state: in ``rounds`` rotating rounds, each probe runs for
    ``seconds / (2 · rounds)`` untimed and then as long timed, back to back.

    A peak is the rate a kernel holds once running. Right after a pause (the engines' rows are timed after
    one: ``timing``) this CPU was slower: an Intel Xeon with AMX ran OpenVINO's 4 ms INT8 convolution at
    54 % of its steady rate after 50 ms idle and needed ~0.25 s of work to reach it (worker pools waking,
    clocks ramping). The untimed run also lets the previous probe's spinning workers stop."""
    share = seconds / (2 * rounds)
    times: dict[str, list[float]] = {n: [] for n in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            warm_up(fns[name], share, min_calls=2)
            end = time.perf_counter() + share
            while True:
                t0 = time.perf_counter()
                fns[name]()
                t1 = time.perf_counter()
                times[name].append(t1 - t0)
                if t1 >= end and len(times[name]) >= 2 * (r + 1):
                    break
    return {n: np.asarray(v) for n, v in times.items()}


def measure_cpu_peak(seconds: float = 2.0) -> dict:
    """GFLOP/s (GOP/s for INT8) of ORT MatMul (2048²) and a 3×3 conv (4 frames, 256 ch, 56²) in FP32 —
    ``peak_gflops``/``fp32_gflops`` is the better —, of that conv in QDQ INT8 in ORT (``ort_int8_gflops``) and
    of ``torch._int_mm`` 2048² (``torch_int8_gflops``), of ``torch.mm`` 2048² in BF16 (``torch_bf16_gflops``);
    with OpenVINO, also of the conv in it per precision (``openvino_<precision>_gflops``); ``<precision>_gflops``:
    each precision's best probe. ``seconds``: each probe's time (``steady_times``): ~8 probes with OpenVINO,
    ~5 without."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    n, c, hw, frames = 2048, 256, 56, 4

    def session(model):
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    conv_model, qconv_model = _conv_model(c, hw, frames), _qdq_conv_model(c, hw, frames)
    mm, conv, qconv = session(_matmul_model(n)), session(conv_model), session(qconv_model)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    x = rng.standard_normal((frames, c, hw, hw), np.float32)
    fns = {"matmul": lambda: mm.run(None, {"a": a, "b": b}), "conv": lambda: conv.run(None, {"x": x}),
           "int8": lambda: qconv.run(None, {"x": x})}
    side = {}
    for name, dtype in (("bf16", torch.bfloat16), ("int8_mm", torch.int8)):
        gemm = _torch_gemm(dtype, n)
        if gemm is not None:
            fns[name], side[name] = gemm
    ov_fns, ov_missing = _openvino_convs({"fp32": conv_model, "bf16": conv_model, "int8": qconv_model}, x)
    fns.update({f"openvino_{p}": f for p, f in ov_fns.items()})
    times = steady_times(fns, seconds)
    conv_flops = 2.0 * frames * c * c * 9 * hw * hw
    flops = {"matmul": 2.0 * n ** 3, **{k: 2.0 * m ** 3 for k, m in side.items()}}
    gflops = {k: round(flops.get(k, conv_flops) / float(np.min(v)) / 1e9, 1) for k, v in times.items()}
    out = {"matmul_gflops": gflops["matmul"], "conv_gflops": gflops["conv"], "ort_int8_gflops": gflops["int8"]}
    out.update({key: gflops[name] for name, key in (("bf16", "torch_bf16_gflops"), ("int8_mm", "torch_int8_gflops"))
                if name in gflops})
    out.update({f"openvino_{p}_gflops": gflops[f"openvino_{p}"] for p in ov_fns})
    fp32 = max(gflops["matmul"], gflops["conv"], gflops.get("openvino_fp32", 0.0))
    out.update({"fp32_gflops": fp32, "peak_gflops": fp32,
                "int8_gflops": max(gflops["int8"], gflops.get("int8_mm", 0.0), gflops.get("openvino_int8", 0.0))})
    bf16 = max(gflops.get("bf16", 0.0), gflops.get("openvino_bf16", 0.0))
    if bf16:
        out["bf16_gflops"] = bf16
    also = " and in OpenVINO" if ov_fns else ""
    int8_how = [f"that Conv as QDQ in ORT{also}"]
    if "int8_mm" in side:
        int8_how.insert(0, f"torch._int_mm {side['int8_mm']}²")
    bf16_how = ["the Conv in OpenVINO's BF16"] if "bf16" in ov_fns else []
    if "bf16" in side:
        bf16_how.insert(0, f"torch.mm {side['bf16']}²" + (" (the CPU has no native BF16)" if side["bf16"] < n else ""))
    out["how"] = (f"FP32: best of ORT MatMul 2048² and Conv 3×3 256ch 56² ×4 frames{also}; INT8: best of "
                  f"{' and '.join(int8_how)} (GOP/s); BF16: {', and '.join(bf16_how) or 'no probe ran'}")
    if ov_missing:
        out["openvino_missing"] = ov_missing
    return out


def best_peak(*probes: dict) -> dict:
    """Several probes of the same kind → one, each figure the best seen (``probes`` counts them); its caption
    (``how``) that of a probe OpenVINO ran in, when one did (a probe it was refused in says why)."""
    ran = [p for p in probes if "openvino_missing" not in p]  # the caption of a probe OpenVINO ran in, if any
    out = {k: v for k, v in probes[0].items() if k not in ("how", "openvino_missing")}
    out.update({k: v for k, v in (ran or probes)[0].items() if k in ("how", "openvino_missing")})
    for p in probes[1:]:
        for key, value in p.items():
            if key.endswith("_gflops"):
                out[key] = max(out.get(key, value), value)
    out["probes"] = len(probes)
    return out


GPU_PROBES = (("fp32", "float32", False), ("tf32", "float32", True), ("fp16", "float16", False),
              ("bf16", "bfloat16", False), ("int8", "int8", False))  #: (name, dtype, TF32 on) of the GPU probes


def measure_gpu_peak(seconds: float = 1.0) -> dict:
    """GFLOP/s of ``torch.mm`` (8192²) on the current CUDA device per precision, timed with CUDA events:
    FP32 with TF32 off, TF32, FP16, BF16, and INT8 (``torch._int_mm``, GOP/s) (``<name>_gflops``);
    ``peak_gflops`` is FP32's. A precision the GPU cannot run is recorded as ``<name>_missing``."""
    out = {}
    for name, dtype, tf32 in GPU_PROBES:
        try:
            out[f"{name}_gflops"] = _gpu_mm_gflops(8192, dtype, tf32)
        except RuntimeError as e:  # a GPU without that precision's kernels: that probe is missing, not all
            out[f"{name}_missing"] = one_line(e)[:160]
    out["peak_gflops"] = out["fp32_gflops"]
    out["how"] = "torch.mm 8192², CUDA events; FP32 with TF32 off, TF32, FP16, BF16 and INT8 (torch._int_mm) each probed"
    return out


def _gpu_mm_gflops(n: int, dtype: str, tf32: bool) -> float:
    """Best GFLOP/s of 10 timed ``n``² products in ``dtype`` (after 3 untimed), TF32 as given."""
    import torch

    from hac_runtime.engines.cuda_graphs import tf32_mode

    if dtype == "int8":
        a = torch.randint(-127, 128, (n, n), device="cuda", dtype=torch.int8)
        b = torch.randint(-127, 128, (n, n), device="cuda", dtype=torch.int8)
        mm = torch._int_mm
    else:
        a = torch.randn(n, n, device="cuda", dtype=getattr(torch, dtype))
        b = torch.randn(n, n, device="cuda", dtype=getattr(torch, dtype))
        mm = torch.mm
    with tf32_mode(tf32):
        for _ in range(3):
            mm(a, b)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(10):
            start.record()
            mm(a, b)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
    return round(2.0 * n ** 3 / best / 1e9, 1)


def peak_for(peak: dict, precision: str) -> float | None:
    """The peak a row of ``precision`` is judged against: that precision's probe where there is one, else
    FP32's (FP16 on a CPU: ORT runs the FP16 ONNX at FP32 speed there)."""
    return peak.get(f"{precision}_gflops") or peak.get("peak_gflops")
