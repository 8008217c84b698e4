"""torch.export artifacts: an ExportedProgram ``.pt2`` and an AOTInductor-compiled package.

Both load without the training code (``hac_runtime.engines.torch``). The
manifest's core travels inside each: ``extra_files["hac.json"]`` in the
ExportedProgram, AOTInductor's package metadata in the compiled one.
"""
from __future__ import annotations

import copy
import json

import torch  # this module is imported only by the writers that use it

from hac_export.onnx import quiet
from hac_runtime.engines.torch.loader import METADATA_FILE
from hac_runtime.errors import HacFailure, one_line

MIXED_NOTE = "trunk {0}; attention, GRU, FC and I/O FP32 (as the mixed FP16 ONNX)"
HALF_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}

CORE_KEYS = ("format", "precision", "classes", "preprocess", "model", "input", "output", "attention", "source_sha256",
             "toolkit_version")


def mixed_precision(model, precision: str):
    """A copy of ``model`` whose ResNet trunk computes in ``precision`` (fp16/bf16): frames go in FP32 and are
    cast, the feature maps come back in FP32, so attention (eqs. 2–7), the GRU and the FC stay FP32 — the
    parts where half precision moves logits (saturating sigmoids, the GRU's recurrence)."""
    dtype = getattr(torch, HALF_DTYPES[precision])
    mixed = copy.deepcopy(model).eval()
    mixed.trunk = HalfTrunk(mixed.trunk, dtype)
    return mixed


class HalfTrunk(torch.nn.Module):
    """A trunk run in ``dtype``: FP32 frames in, FP32 feature maps out."""

    def __init__(self, trunk, dtype):
        super().__init__()
        self.trunk = trunk.to(dtype)
        self.dtype = dtype

    def forward(self, x):
        return self.trunk(x.to(self.dtype)).float()


def export_program(model, k: int, image_size: int, batch_max: int):
    """``torch.export`` of ``model`` (eval, CPU) with batch dynamic in ``[1, max(2, batch_max)]``.

    The program's range is at least ``[1, 2]``: ``torch.export`` refuses a range of one value, and the
    example batch is 2 (batch 1 would be specialised). A ``batch_max`` of 1 is the manifest's, which the
    runner enforces."""
    from hac_export.outputs import exportable

    example = torch.randn(2, k, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=max(2, batch_max))
    try:
        with quiet(), torch.no_grad():
            return torch.export.export(exportable(model), (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:  # noqa: BLE001
        first = one_line(e)[:200]
        raise HacFailure(f"torch.export failed: {type(e).__name__}: {first}") from e


def save_program(program, path, manifest: dict) -> dict:
    core = {k: manifest[k] for k in CORE_KEYS if k in manifest}
    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(core)})
    return {"exporter": "torch.export", "torch": torch.__version__, "device": "cpu"}


def compile_aoti(program, path, manifest: dict, device: str = "cpu") -> dict:
    """AOTInductor-compile ``program`` for ``device`` (``cpu`` or ``cuda``) into the package ``path`` (``.pt2``)."""
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    from hac_runtime.engines.cuda_graphs import tf32_mode

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in manifest.items() if k in CORE_KEYS}
    try:  # TF32 off while Inductor picks its CUDA kernels: FP32 means FP32 (the engine runs with it off too)
        with quiet(), tf32_mode(False):
            torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                     inductor_configs={"aot_inductor.metadata": meta})
    except Exception as e:  # noqa: BLE001 - a compiler failure is internal: exit 1
        first = one_line(e)[:200]
        raise HacFailure(f"AOTInductor compilation failed: {type(e).__name__}: {first}") from e
    return {"exporter": "torch._inductor.aoti_compile_and_package", "torch": torch.__version__,
            "device": device.split(":")[0], "tf32": False}
