"""Load torch.export artifacts without the training code: an ExportedProgram ``.pt2`` or an AOTInductor package."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from hac_runtime import devices
from hac_runtime.engines.installs import gpu_install
from hac_runtime.errors import HacError, one_line

METADATA_FILE = "hac.json"  # manifest core stored inside a .pt2 ExportedProgram (extra_files)


def import_torch():
    try:
        import torch
    except ImportError:
        raise HacError("torch is not installed: pip install torch") from None
    return torch


def resolve_device(device: str) -> str:
    """``device`` → ``cpu`` / ``cuda:N`` as torch sees this machine (``devices.resolve_device``)."""
    torch = import_torch()
    return devices.resolve_device(device, torch.cuda.is_available(),
                                  f"torch sees no CUDA GPU: on a machine with one run {gpu_install()}")


def _check_embedded(path: Path, meta: dict, manifest: dict) -> None:
    sha = meta.get("source_sha256")
    if sha and sha != manifest["source_sha256"]:
        raise HacError(f"{path.name}: embedded source checksum differs from its manifest (mixed-up files)")


def load_exported_program(path, manifest: dict, device: str):
    """An ExportedProgram's module on ``device`` (moved with torch.export's device pass)."""
    torch = import_torch()
    path = Path(path)
    extra = {METADATA_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as e:  # noqa: BLE001 - many failure types for a foreign or corrupt archive
        first = one_line(e)[:160]
        raise HacError(f"{path}: not a loadable torch.export program ({first})") from None
    if extra[METADATA_FILE]:
        _check_embedded(path, json.loads(extra[METADATA_FILE]), manifest)
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program.module()


def load_aoti_package(path, manifest: dict, device: str, single_threaded: bool = False):
    """An AOTInductor package's runner; it only runs on the device kind it was compiled for.

    ``single_threaded``: one model instance and no per-run completion event (needed under CUDA graphs)."""
    torch = import_torch()
    path = Path(path)
    compiled = (manifest.get("builder") or {}).get("device", "cpu")
    if device.split(":")[0] != compiled:
        raise HacError(f"{path.name}: compiled by AOTInductor for {compiled}, cannot run on {device} "
                       f"(export it again on a {device.split(':')[0]} machine)")
    index = int(device.split(":")[1]) if ":" in device else -1
    if device == "cpu":  # importing cpp_extension warns "No CUDA runtime is found" on CPU boxes: not news here
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        runner = torch._inductor.aoti_load_package(str(path), run_single_threaded=single_threaded,
                                                   device_index=index)
    except Exception as e:  # noqa: BLE001
        first = one_line(e)[:160]
        raise HacError(f"{path}: not a loadable AOTInductor package ({first})") from None
    _check_embedded(path, runner.get_metadata(), manifest)
    return runner
