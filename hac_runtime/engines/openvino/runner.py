"""OpenVINO engine: an exported ONNX file compiled for the CPU at the run's precision (fp32, bf16, int8).

The compiled model is shared; each calling thread gets an infer request of its own (OpenVINO's rule: a
request runs one inference at a time, and a second caller got "Infer Request is busy"). The engine keeps
them (by thread id, not in thread-local storage) and ``close`` frees them all in the closing thread: a
request freed when a daemon thread ends can be freed while Python shuts down, and its destructor, re-taking
the GIL there, aborted the process ("terminate called without an active exception", exit -6).
"""
from __future__ import annotations

import threading

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
        self._requests: dict[int, object] = {}  # thread id → its infer request (an ended thread's id may be reused)
        self._requests_lock = threading.Lock()
        self.request  # the loading thread's, made now: a model that cannot make one fails here, not mid-run

    @property
    def providers(self) -> list[str]:
        """``openvino-cpu-<precision>``: what it computes in (int8: the QDQ file's quantized layers in INT8, the
        rest at the ``f32`` precision hint, ``facts["hint"]``; it said ``f32`` alone, read as an FP32 run)."""
        return [f"openvino-cpu-{self.precision}"]

    @property
    def request(self):
        """This thread's infer request."""
        thread = threading.get_ident()
        request = self._requests.get(thread)
        if request is None:
            with self._requests_lock:
                if self.compiled is None:
                    raise HacError(f"{self.artifact.name}: the openvino engine is closed")
                request = self._requests[thread] = self.compiled.create_infer_request()
        return request

    def _run(self, batch):
        return run_on_host(batch, self._run_host)

    def _run_host(self, batch: np.ndarray) -> tuple:
        request = self.request
        request.infer({0: np.ascontiguousarray(batch)})
        return tuple(np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True)
                     for i in range(len(self.output_names)))

    def close(self) -> None:
        with self._requests_lock:
            self.compiled = None
            self._requests.clear()
