"""Open an ONNX artifact in ONNX Runtime on the providers a device needs, and prove they are active.

ONNX Runtime silently falls back to the CPU when a provider cannot start; this
loader compares ``session.get_providers()`` with what was asked and says so.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from hac_runtime.devices import resolve_device
from hac_runtime.engines.installs import check_ort_install
from hac_runtime.errors import HacError, one_line

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def import_ort():
    try:
        import onnxruntime
    except ImportError:
        check_ort_install()
        raise HacError("onnxruntime is not installed: pip install -e '.[cpu]' (or '.[gpu]' for CUDA)") from None
    check_ort_install()
    return onnxruntime


_ARENA_LOCK = threading.Lock()
_ARENA_REGISTERED = False


SPINNING = "session.intra_op.allow_spinning"  #: the session option: "0", its CPU workers sleep between calls


def spins(session) -> bool:
    """Whether ``session``'s CPU worker threads spin between calls (ONNX Runtime's default, the option unset)."""
    try:
        return session.get_session_options().get_session_config_entry(SPINNING) != "0"
    except RuntimeError:  # not set
        return True


def cpu_session_options(ort, spin: bool = True):
    """Options of a CPU session: it allocates from the process's one CPU arena, shared by every ONNX Runtime
    session here (``hac-bench``'s runners, an app's engines) and grown by what is asked.

    Each session's own arena grows to the next power of two and keeps it: the FP32 and INT8 ResNet50
    sessions held ~750 MB more after two batches of 8 clips than after batches of one, ~520 MB in the shared one,
    at the same speed (benchmarks/openvino.md, 2026-12-03 evening). Registered once per process, on the
    first CPU session; what the arena took stays with the process.

    ``spin`` False: its worker threads sleep between calls instead of spinning
    (``SPINNING`` 0), for a caller whose other threads need the cores (the pipeline's
    face work). Fed one INT8 clip at a time, a spinning pool burnt ~40 ms of CPU after each call (163-171
    against 120-131 ms a clip) for 4-7 ms less latency (61-67 against 68-70 ms at the median, interleaved):
    1.1-1.2x the pipeline's frames/s on ORT (benchmarks/pipeline.md, 2026-12-04)."""
    global _ARENA_REGISTERED
    with _ARENA_LOCK:
        if not _ARENA_REGISTERED:
            # OrtArenaCfg(max_mem 0: no limit, extend strategy 1: kSameAsRequested, default chunk sizes)
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
            _ARENA_REGISTERED = True
    options = ort.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")
    if not spin:
        options.add_session_config_entry(SPINNING, "0")
    return options


def providers_for(device: str) -> tuple[list, str]:
    """``device`` → (providers list for InferenceSession, resolved device string)."""
    ort = import_ort()
    available = ort.get_available_providers()
    resolved = resolve_device(device, CUDA_EP in available,
                              f"ONNX Runtime here has no {CUDA_EP} (available: {', '.join(available)}): "
                              f"uninstall the onnxruntime CPU package, then pip install -e '.[gpu]'")
    if resolved == "cpu":
        return [CPU_EP], "cpu"
    return [(CUDA_EP, {"device_id": int(resolved[5:])}), CPU_EP], resolved


def load_session(path, device: str = "auto", manifest: dict | None = None, spin: bool = True):
    """An ``InferenceSession`` for ``path`` on ``device``; returns (session, resolved device). ``spin``: on a
    CPU, whether its worker threads spin between calls (``cpu_session_options``)."""
    ort = import_ort()
    providers, resolved = providers_for(device)
    path = Path(path)
    options = cpu_session_options(ort, spin) if resolved == "cpu" else None
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types for bad models
        first = one_line(e)[:200]
        raise HacError(f"{path}: ONNX Runtime cannot load it ({first})") from None
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    active = session.get_providers()
    if wanted not in active:
        raise HacError(f"{path.name}: ONNX Runtime did not activate {wanted} (active: {', '.join(active)}); "
                       "the CUDA/cuDNN libraries it needs are probably missing — not falling back to the CPU")
    if manifest is not None:
        check_session(session, path, manifest)
    return session, resolved


def check_session(session, path: Path, manifest: dict) -> None:
    """The model's own input/output names, static dims and embedded checksum must match the manifest."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    name, shape = manifest["input"]["name"], manifest["input"]["shape"]
    if len(inputs) != 1 or inputs[0].name != name or list(inputs[0].shape[1:]) != list(shape[1:]) \
            or isinstance(inputs[0].shape[0], int):
        got = [(i.name, i.shape) for i in inputs]
        raise HacError(f"{path.name}: model inputs {got} do not match its manifest ({name} {shape})")
    want = [manifest["output"]["name"]] + ([manifest["attention"]["name"]] if manifest.get("attention") else [])
    if [o.name for o in outputs] != want:
        raise HacError(f"{path.name}: model outputs {[o.name for o in outputs]} do not match its manifest ({want})")
    meta = session.get_modelmeta().custom_metadata_map
    if "source_sha256" in meta and meta["source_sha256"] != manifest["source_sha256"]:
        raise HacError(f"{path.name}: embedded source checksum differs from its manifest (mixed-up files)")
    if "classes" in meta and json.loads(meta["classes"]) != manifest["classes"]:
        raise HacError(f"{path.name}: embedded class names differ from its manifest (mixed-up files)")
