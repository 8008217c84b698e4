"""OpenVINO engine: an exported ONNX file compiled for the CPU at the run's precision (fp32, bf16, int8)."""
from __future__ import annotations

import numpy as np

from hac_runtime.devices import parse_device
from hac_runtime.engines.base import Engine, run_on_host
from hac_runtime.engines.openvino.loader import compile_onnx
from hac_runtime.errors import HacError


class OpenVinoEngine(Engine):
    """``precision``: ``bf16`` runs an FP32 file with OpenVINO's BF16 precision hint; otherwise the file's own."""

    kind = "openvino"

    def __init__(self, artifact, manifest: dict, device: str = "auto", precision: str | None = None):
        super().__init__(artifact, manifest, device, precision)
        kind, _ = parse_device(device)
        if kind == "cuda":
            raise HacError(f"{self.artifact.name}: the openvino engine runs on the CPU here, not on CUDA")
        self.device = "cpu"
        self.compiled, self.facts = compile_onnx(self.artifact, self.precision)
        names = [o.get_any_name() for o in self.compiled.outputs]
        if names != self.output_names:
            raise HacError(f"{self.artifact.name}: model outputs {names} do not match its manifest ({self.output_names})")
        self.request = self.compiled.create_infer_request()

    @property
    def providers(self) -> list[str]:
        """``openvino-cpu-<precision>``: what it computes in (int8: the QDQ file's quantized layers in INT8, the
        rest at the ``f32`` precision hint, ``facts["hint"]``; it said ``f32`` alone, read as an FP32 run)."""
        return [f"openvino-cpu-{self.precision}"]

    def _run(self, batch):
        return run_on_host(batch, self._run_host)

    def _run_host(self, batch: np.ndarray) -> tuple:
        self.request.infer({0: np.ascontiguousarray(batch)})
        return tuple(np.array(self.request.get_output_tensor(i).data, dtype=np.float32, copy=True)
                     for i in range(len(self.output_names)))

    def close(self) -> None:
        self.request = self.compiled = None
