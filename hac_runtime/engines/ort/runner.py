"""ONNX Runtime engine: CPU, or CUDA with IO binding on torch CUDA tensors."""
from __future__ import annotations

import numpy as np

from hac_runtime.engines.base import Engine
from hac_runtime.engines.ort.loader import load_session
from hac_runtime.errors import HacError


class OrtEngine(Engine):
    """An ONNX artifact in an ONNX Runtime session. ``providers`` lists the active ones."""

    kind = "ort"

    def __init__(self, artifact, manifest: dict, device: str = "auto", spin: bool = True):
        super().__init__(artifact, manifest, device)
        self.session, self.device = load_session(self.artifact, device, manifest, spin)
        self._binding = None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []

    def _run(self, batch):
        if isinstance(batch, np.ndarray):
            return tuple(self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(batch)}))
        if batch.device.type == "cuda" and self.device.startswith("cuda"):
            return self._infer_bound(batch)
        outs = self.session.run(self.output_names, {self.input_name: batch.detach().cpu().contiguous().numpy()})
        import torch

        return tuple(torch.from_numpy(o).to(batch.device) for o in outs)

    def _infer_bound(self, batch):
        """Zero-copy: bind the torch CUDA input and preallocated torch CUDA outputs to the session."""
        import torch

        index = int(self.device.split(":")[1])
        if batch.device.index not in (None, index):
            raise HacError(f"{self.artifact.name}: input is on {batch.device}, the session on {self.device}")
        batch = batch.contiguous()
        widths = [len(self.classes), self.input_shape[1]]  # logits (B, classes), alpha (B, k)
        outs = [torch.empty((batch.shape[0], w), dtype=torch.float32, device=batch.device)
                for w in widths[:len(self.output_names)]]
        binding = self._binding or self.session.io_binding()
        self._binding = binding
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(batch.shape), batch.data_ptr())
        for name, out in zip(self.output_names, outs):
            binding.bind_output(name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(batch.device).synchronize()  # the input must be ready before ORT reads it
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return tuple(outs)

    def close(self) -> None:
        self._binding = None
        self.session = None
