"""TensorRT engines from the exported ONNX, through TensorRT's Python API.

* TensorRT >= 10.12 (and 11, where it is the only mode): a strongly typed
  network — precisions come from the ONNX itself: FP32, the mixed FP16 model
  (trunk FP16), or the QDQ INT8 model (explicit quantisation).
* Older TensorRT 10: a weakly typed network with the FP16 / INT8 builder flag.

One optimisation profile from ``--batch MIN:OPT:MAX``, a workspace limit, and a
timing cache persisted per TensorRT version and GPU (``$HAC_CACHE_DIR``, default
``~/.cache/hac``) so rebuilds are quick. FP32 engines clear the TF32 flag so
they stay comparable with eager FP32.
"""
from __future__ import annotations

import os
from pathlib import Path

from hac_export.registry import gpu_slug
from hac_runtime.atomic import atomic_path
from hac_runtime.engines.trt.loader import gpu_facts, require_tensorrt, trt_logger
from hac_runtime.errors import HacFailure

STRONGLY_TYPED_FROM = (10, 12)
DEFAULT_WORKSPACE_GB = 4.0


def trt_version(trt) -> tuple[int, int]:
    major, minor = (trt.__version__.split(".") + ["0"])[:2]
    return int(major), int(minor)


def timing_cache_path(trt, gpu: str) -> Path:
    root = Path(os.environ.get("HAC_CACHE_DIR") or Path.home() / ".cache" / "hac")
    return root / "trt" / f"timing_trt{trt.__version__}_{gpu_slug(gpu)}.cache"


def build_engine(onnx_path, engine_path, precision: str, batch: tuple[int, int, int],
                 workspace_gb: float | None = None, device_index: int = 0) -> dict:
    """Build a serialized engine from ``onnx_path`` into ``engine_path``; return the builder facts."""
    trt = require_tensorrt("building a TensorRT engine")
    import torch

    workspace_gb = workspace_gb or DEFAULT_WORKSPACE_GB
    facts = gpu_facts(device_index)
    strongly_typed = trt_version(trt) >= STRONGLY_TYPED_FROM
    with torch.cuda.device(device_index):
        logger = trt_logger()
        builder = trt.Builder(logger)
        flags = 0
        if strongly_typed and trt_version(trt)[0] < 11:  # always on (and the flag deprecated) from 11
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [parser.get_error(i).desc() for i in range(parser.num_errors)] or ["unknown error"]
            raise HacFailure(f"TensorRT could not parse {Path(onnx_path).name}: {errors[0].splitlines()[0][:200]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        builder_flags = []
        if not strongly_typed and precision in ("fp16", "int8"):
            flag = trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.INT8
            config.set_flag(flag)
            builder_flags.append(precision.upper())
        if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
            builder_flags.append("no TF32")
        inp = network.get_input(0)
        shape = tuple(inp.shape)[1:]
        lo, opt, hi = batch
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (lo, *shape), (opt, *shape), (hi, *shape))
        config.add_optimization_profile(profile)
        cache_file = timing_cache_path(trt, facts["gpu"])
        cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
        if cache is None:  # an unreadable cache file: start afresh
            cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):  # a cache of another GPU/version
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise HacFailure(f"TensorRT failed to build an engine from {Path(onnx_path).name} (see TensorRT's log above)")
        Path(engine_path).write_bytes(memoryview(serialized))
        built_cache = config.get_timing_cache()
        if built_cache is not None:  # the cache only speeds up later builds: none is no reason to fail
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(memoryview(built_cache.serialize()))
    return {"tensorrt": trt.__version__, **facts, "strongly_typed": strongly_typed, "flags": builder_flags,
            "profile": {"min": lo, "opt": opt, "max": hi}, "workspace_bytes": int(workspace_gb * (1 << 30)),
            "timing_cache": str(cache_file), "source_onnx": Path(onnx_path).name}
