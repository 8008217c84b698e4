"""torch engine: a torch.export ExportedProgram or an AOTInductor-compiled package."""
from __future__ import annotations

import numpy as np

from hac_runtime.engines.base import Engine, parse_device
from hac_runtime.engines.torch.loader import import_torch, load_aoti_package, load_exported_program, resolve_device


class TorchEngine(Engine):
    """Runs ``.pt2`` artifacts; takes NumPy or torch tensors (moved to its device)."""

    kind = "torch"

    def __init__(self, artifact, manifest: dict, device: str = "auto"):
        super().__init__(artifact, manifest, device)
        self._torch = import_torch()
        kind, index = parse_device(device)
        if self.format == "aoti" and kind == "auto":
            kind = (manifest.get("builder") or {}).get("device", "cpu")
        self.device = resolve_device(kind, index)
        load = load_aoti_package if self.format == "aoti" else load_exported_program
        self.module = load(self.artifact, manifest, self.device)

    @property
    def providers(self) -> list[str]:
        return ["aoti" if self.format == "aoti" else "torch.export"]

    def _run(self, batch):
        torch = self._torch
        from_numpy = isinstance(batch, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(batch)) if from_numpy else batch
        with torch.inference_mode():
            out = self.module(x.to(self.device))
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float().cpu().numpy() if from_numpy else out.to(batch.device)

    def close(self) -> None:
        self.module = None
