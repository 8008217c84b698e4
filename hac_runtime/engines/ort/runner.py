"""ONNX Runtime engine: CPU, or CUDA with IO binding on torch CUDA tensors."""
from __future__ import annotations

import numpy as np

from hac_runtime.engines.base import Engine
from hac_runtime.engines.ort.loader import load_session
from hac_runtime.errors import HacError


class OrtEngine(Engine):
    """An ONNX artifact in an ONNX Runtime session. ``providers`` lists the active ones."""

    kind = "ort"

    def __init__(self, artifact, manifest: dict, device: str = "auto"):
        super().__init__(artifact, manifest, device)
        self.session, self.device = load_session(self.artifact, device, manifest)
        self._binding = None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []

    def _run(self, batch):
        if isinstance(batch, np.ndarray):
            return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch)})[0]
        if batch.device.type == "cuda" and self.device.startswith("cuda"):
            return self._infer_bound(batch)
        out = self.session.run([self.output_name], {self.input_name: batch.detach().cpu().contiguous().numpy()})[0]
        import torch

        return torch.from_numpy(out).to(batch.device)

    def _infer_bound(self, batch):
        """Zero-copy: bind the torch CUDA input and a preallocated torch CUDA output to the session."""
        import torch

        index = int(self.device.split(":")[1])
        if batch.device.index not in (None, index):
            raise HacError(f"{self.artifact.name}: input is on {batch.device}, the session on {self.device}")
        batch = batch.contiguous()
        out = torch.empty((batch.shape[0], len(self.classes)), dtype=torch.float32, device=batch.device)
        binding = self._binding or self.session.io_binding()
        self._binding = binding
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(batch.shape), batch.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(batch.device).synchronize()  # the input must be ready before ORT reads it
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out

    def close(self) -> None:
        self._binding = None
        self.session = None
