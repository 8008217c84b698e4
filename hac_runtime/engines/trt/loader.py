"""Deserialize a TensorRT engine after checking that this machine can run it.

An engine is tied to the GPU and the TensorRT version it was built with; the
manifest records both, and a mismatch is refused with one line instead of
TensorRT's own failure deep inside deserialisation.
"""
from __future__ import annotations

from pathlib import Path

from hac_runtime.engines.installs import check_tensorrt_install, gpu_install
from hac_runtime.errors import HacError

_LOGGER = None


def require_tensorrt(what: str = "a TensorRT engine"):
    """Import tensorrt and check for a CUDA GPU; anything missing → one-line HacError saying how to install."""
    missing = []
    try:
        import tensorrt
    except ImportError:
        tensorrt = None
        missing.append("the tensorrt package (not installed)")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        missing.append("a CUDA GPU visible to a CUDA build of torch (torch.cuda.is_available() is False)")
    if missing:
        raise HacError(f"{what} needs TensorRT and a CUDA GPU; missing here: {'; '.join(missing)} "
                       f"— on a machine with an NVIDIA GPU and driver run {gpu_install()}")
    check_tensorrt_install()
    return tensorrt


def trt_logger():
    global _LOGGER
    if _LOGGER is None:
        import tensorrt as trt

        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def gpu_facts(index: int = 0) -> dict:
    """Name and compute capability of CUDA device ``index`` (what an engine is tied to)."""
    import torch

    major, minor = torch.cuda.get_device_capability(index)
    return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


def check_builder(path: Path, manifest: dict, index: int) -> None:
    """The engine's TensorRT version and GPU (from the manifest) must be this machine's."""
    import tensorrt as trt

    built = manifest.get("builder") or {}
    here = {"tensorrt": trt.__version__, **gpu_facts(index)}
    for key in ("tensorrt", "gpu", "compute_capability"):
        if built.get(key) != here[key]:
            raise HacError(f"{path.name}: built with TensorRT {built.get('tensorrt')} on {built.get('gpu')} "
                           f"(sm {built.get('compute_capability')}); this machine has TensorRT {here['tensorrt']} on "
                           f"{here['gpu']} (sm {here['compute_capability']}): rebuild it here with hac-export --format trt")


def load_trt_engine(path, manifest: dict, index: int = 0):
    """(runtime, ICudaEngine) for ``path``; refuses version/GPU mismatches and I/O that differ from the manifest."""
    trt = require_tensorrt()
    path = Path(path)
    check_builder(path, manifest, index)
    runtime = trt.Runtime(trt_logger())
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise HacError(f"{path}: TensorRT could not deserialize this engine (corrupt or built for another setup)")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    want_in, want_out = manifest["input"]["name"], manifest["output"]["name"]
    if inputs != [want_in] or want_out not in names:
        raise HacError(f"{path.name}: engine tensors {names} do not match its manifest (input {want_in}, output {want_out})")
    outputs = [want_out] + ([manifest["attention"]["name"]] if manifest.get("attention") else [])
    if any(n not in names for n in outputs):
        raise HacError(f"{path.name}: engine tensors {names} lack the outputs {outputs} of its manifest")
    if any(engine.get_tensor_dtype(n) != trt.float32 for n in (want_in, *outputs)):
        raise HacError(f"{path.name}: engine input and outputs must be float32")
    max_batch = engine.get_tensor_profile_shape(want_in, 0)[2][0]
    if max_batch != manifest["input"]["batch"]["max"]:
        raise HacError(f"{path.name}: engine profile max batch {max_batch} differs from its manifest")
    return runtime, engine
