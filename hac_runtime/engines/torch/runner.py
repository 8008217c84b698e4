"""torch engine: a torch.export ExportedProgram or an AOTInductor-compiled package.

On CUDA it runs on a stream of its own (AOTInductor launches on the current stream), with TF32 as the
artifact says (``builder.tf32``; FP32 artifacts: off, so FP32 means FP32), and with ``cuda_graph=True``
replays one CUDA graph per batch bucket, captured at load (``hac_runtime.engines.cuda_graphs``).
"""
from __future__ import annotations

import numpy as np

from hac_runtime.devices import parse_device
from hac_runtime.engines.base import Engine
from hac_runtime.engines.cuda_graphs import (GraphBuckets, batch_buckets, capture_failed_line, finish, tf32_label,
                                             tf32_mode)
from hac_runtime.engines.torch.loader import import_torch, load_aoti_package, load_exported_program, resolve_device
from hac_runtime.errors import HacError

GRAPH_MAX_BATCH = 16  #: the largest bucket captured for an artifact with no maximum batch


class TorchEngine(Engine):
    """Runs ``.pt2`` artifacts; takes NumPy or torch tensors (moved to its device)."""

    kind = "torch"

    def __init__(self, artifact, manifest: dict, device: str = "auto", cuda_graph: bool = False):
        super().__init__(artifact, manifest, device)
        torch = self._torch = import_torch()
        if self.format == "aoti" and parse_device(device)[0] == "auto":  # where it was compiled for
            device = (manifest.get("builder") or {}).get("device", "cpu")
        self.device = resolve_device(device)
        if self.format == "aoti":  # single-threaded: its per-run completion event cannot be captured in a graph
            self.module = load_aoti_package(self.artifact, manifest, self.device, single_threaded=cuda_graph)
        else:
            self.module = load_exported_program(self.artifact, manifest, self.device)
        self.on_cuda = self.device.startswith("cuda")
        self.tf32 = bool((manifest.get("builder") or {}).get("tf32", False))
        self.graph_failure = None
        self._graphs = None
        if cuda_graph and not self.on_cuda:
            raise HacError(f"{self.artifact.name}: CUDA-graph replay needs a CUDA device, not {self.device}")
        if self.on_cuda:
            self.stream = torch.cuda.Stream(device=self.device)
        if cuda_graph:
            top = self.max_batch or GRAPH_MAX_BATCH
            self._graphs = GraphBuckets(self.stream, batch_buckets(self.min_batch, top), self._graph_run)
            with torch.cuda.device(self.device), tf32_mode(self.tf32):
                self.graph_failure = self._graphs.capture()
            if self.graph_failure:  # plain runs: back to the thread-safe runner
                self._graphs = None
                if self.format == "aoti":
                    self.module = load_aoti_package(self.artifact, manifest, self.device)

    @property
    def cuda_graph(self) -> bool:
        return self._graphs is not None

    @property
    def serial(self) -> bool:
        """Replayed graphs read one static input (and the AOTI runner under them is the single-threaded one)."""
        return self._graphs is not None

    @property
    def providers(self) -> list[str]:
        name = "aoti" if self.format == "aoti" else "torch.export"
        if not self.on_cuda:
            return [name]
        out = [name + ("+cudagraph" if self.cuda_graph else ""), f"CUDA, {tf32_label(self.tf32)}"]
        if self.graph_failure:
            out.append(capture_failed_line(self.graph_failure))
        return out

    def _graph_run(self, bucket: int):
        torch = self._torch
        static_input = torch.zeros((bucket, *self.input_shape[1:]), dtype=torch.float32, device=self.device)

        def run():
            with torch.inference_mode():
                return self._outputs(self.module(static_input))

        return static_input, run

    def _outputs(self, out) -> tuple:
        """The module's outputs as a tuple of ``output_names``' length (an ExportedProgram returns a tuple)."""
        out = tuple(out) if isinstance(out, (list, tuple)) else (out,)
        return out[:len(self.output_names)]

    def _run(self, batch):
        torch = self._torch
        from_numpy = isinstance(batch, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(batch)) if from_numpy else batch
        if not self.on_cuda:
            with torch.inference_mode():
                outs = self._outputs(self.module(x.to(self.device)))
            return tuple(o.float().cpu().numpy() if from_numpy else o.to(batch.device) for o in outs)
        b = int(x.shape[0])
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self._mark(0)
        if self._graphs is not None and self._graphs.covers(b):
            out = self._graphs.replay(x, b, self._mark)  # TF32 was fixed when the graph was captured
        else:
            # The process-wide TF32 setting is held only while the kernels are launched, not while they run.
            with torch.cuda.stream(self.stream), torch.inference_mode():
                x = x.to(self.device)
                if not from_numpy:  # the caller's tensor must outlive the work queued on our stream
                    x.record_stream(self.stream)
                self._mark(1)
                with tf32_mode(self.tf32):
                    out = self._outputs(self.module(x))
                self._mark(2)
        results = finish(out, self.stream, from_numpy, self._mark)
        return results if from_numpy else tuple(r.to(batch.device) for r in results)

    def close(self) -> None:
        with self.one_at_a_time():  # after a replay in flight on another thread
            if self._graphs is not None:
                self._graphs.clear()
            self.module = None
