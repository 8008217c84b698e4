"""Open an exported ONNX file in OpenVINO on the CPU, with the precision asked for, or refuse in one line.

OpenVINO is optional (``pip install -e '.[openvino]'``) and not officially supported on AMD CPUs; some
releases crashed (SIGFPE) inside ``compile_model`` on Zen 4 — a crash no ``except`` can catch. So the first
use on a machine compiles a tiny model in a child process; a crash there becomes a one-line refusal, and the
verdict is cached per OpenVINO version and CPU (``$HAC_CACHE/openvino-probe.json``).

Precisions: ``fp32`` sets ``INFERENCE_PRECISION_HINT=f32`` (on a CPU with BF16 OpenVINO's default is bf16,
which would silently compute another number); ``bf16`` sets ``bf16`` and needs a CPU that has it
(``OPTIMIZATION_CAPABILITIES``); ``int8`` runs the QDQ file, the float parts in f32.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hac_runtime.errors import HacError, one_line
from hac_runtime.machine import cache_root, cpu_name

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
_PROBE = """
import numpy as np, openvino as ov
from openvino import opset13 as ops
x = ops.parameter([1, 3, 8, 8], np.float32)
w = ops.constant(np.ones((4, 3, 3, 3), np.float32))
m = ov.Model([ops.relu(ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1]))], [x])
c = ov.Core().compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
print(float(c(np.ones((1, 3, 8, 8), np.float32))[0].sum()))
"""


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise HacError("OpenVINO is not installed: pip install -e '.[openvino]'") from None
    return openvino


def probe(version: str) -> None:
    """Compile a tiny model in a child process once per OpenVINO version and CPU; refuse if it crashed."""
    cache = cache_root()
    key = f"{version} on {cpu_name()}"
    path = cache / "openvino-probe.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    verdict = known.get(key)
    if verdict is None:
        try:
            p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
            verdict = "ok" if p.returncode == 0 else (
                f"crashed with signal {-p.returncode}" if p.returncode < 0
                else ((p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1])[:200])
        except subprocess.TimeoutExpired:
            verdict = "compile_model did not finish in 120 s"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**known, key: verdict}, indent=1))
        except OSError:
            pass  # an unwritable cache only means probing again next time
    if verdict != "ok":
        raise HacError(f"OpenVINO {version} cannot compile models on this CPU ({cpu_name()}): {verdict}; "
                       "use the ort engine")


def compile_onnx(path: Path, precision: str, threads: int | None = None):
    """(compiled model, facts) for ``path`` on the CPU at ``precision``."""
    ov = import_openvino()
    probe(ov.__version__)
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision == "bf16" and "BF16" not in caps:
        raise HacError(f"{path.name}: this CPU ({cpu_name()}) has no BF16 (OpenVINO reports {', '.join(caps)}): "
                       "run it as fp32, or int8")
    if precision not in HINTS:
        raise HacError(f"{path.name}: the openvino engine runs {', '.join(HINTS)} artifacts, not {precision}")
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with long messages
        first = one_line(e)[:200]
        raise HacError(f"{path.name}: OpenVINO cannot compile it ({first})") from None
    return compiled, {"openvino": ov.__version__, "hint": HINTS[precision], "capabilities": list(caps)}
