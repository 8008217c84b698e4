"""TensorRT engine: named I/O tensors bound to torch CUDA buffers, ``execute_async_v3`` on its own stream.

With ``cuda_graph=True`` every batch bucket is captured into a CUDA graph when the engine opens
(``hac_runtime.engines.cuda_graphs``), each with an execution context of its own: a captured graph
fixes its context's shapes and addresses. The contexts are created ``USER_MANAGED`` and share one
device-memory block for their activations (they run one at a time, on one stream), instead of one
block per context. If a capture fails, the engine runs plainly and its ``providers`` say why.
"""
from __future__ import annotations

import numpy as np

from hac_runtime.devices import parse_device, resolve_device
from hac_runtime.engines.base import Engine
from hac_runtime.engines.cuda_graphs import GraphBuckets, batch_buckets, capture_failed_line, finish
from hac_runtime.engines.trt.loader import load_trt_engine, require_tensorrt
from hac_runtime.errors import HacError, HacFailure

ALIGNMENT = 256  #: bytes TensorRT requires of every tensor address


class TrtEngine(Engine):
    """A serialized TensorRT engine on one CUDA device. Buffers are preallocated per batch size."""

    kind = "trt"
    serial = True  #: one execution context and its per-batch buffers (or a graph's): calls take turns

    def __init__(self, artifact, manifest: dict, device: str = "auto", cuda_graph: bool = False):
        super().__init__(artifact, manifest, device)
        if parse_device(device)[0] == "cpu":
            raise HacError(f"{self.artifact.name}: TensorRT engines run on a CUDA GPU, not on the CPU")
        require_tensorrt()
        import tensorrt as trt
        import torch

        self._torch = torch
        self._trt = trt
        self.device = resolve_device(device, torch.cuda.is_available(), "torch sees no CUDA GPU")
        self.index = int(self.device[5:])
        with torch.cuda.device(self.index):
            self.runtime, self.engine = load_trt_engine(self.artifact, manifest, self.index)
            self.stream = torch.cuda.Stream(device=self.index)  # not the default stream
            self._scratch = None  # the device memory every context of this engine shares
            self.context = self._new_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        engine_outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(engine_outputs) != sorted(self.output_names):
            raise HacError(f"{self.artifact.name}: engine outputs {engine_outputs} do not match its manifest "
                           f"({self.output_names})")
        self._buffers: dict[int, tuple] = {}
        top = self.max_batch or self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0]
        self.buckets = batch_buckets(self.min_batch, top)
        self.graph_failure = None
        self._graphs = None
        if cuda_graph:
            with torch.cuda.device(self.index):
                self._graphs = GraphBuckets(self.stream, self.buckets, self._graph_run)
                self.graph_failure = self._graphs.capture()
            if self.graph_failure:
                self._graphs = None

    @property
    def cuda_graph(self) -> bool:
        return self._graphs is not None

    @property
    def providers(self) -> list[str]:
        if self.graph_failure:
            return ["tensorrt", capture_failed_line(self.graph_failure)]
        return ["tensorrt+cudagraph" if self.cuda_graph else "tensorrt"]

    def _new_context(self):
        """An execution context on the engine's shared activation memory (allocated on first use)."""
        trt, torch = self._trt, self._torch
        strategy = getattr(trt, "ExecutionContextAllocationStrategy", None)
        if strategy is None:  # an older TensorRT: each context allocates its own
            return self.engine.create_execution_context()
        context = self.engine.create_execution_context(strategy.USER_MANAGED)
        size = getattr(self.engine, "device_memory_size_v2", None)
        size = self.engine.device_memory_size if size is None else size
        if self._scratch is None:
            self._scratch = torch.empty(max(int(size), 1), dtype=torch.uint8, device=self.device)
        if hasattr(context, "set_device_memory"):  # TensorRT ≥ 10.1 takes the size with it
            context.set_device_memory(self._scratch.data_ptr(), self._scratch.numel())
        else:
            context.device_memory = self._scratch.data_ptr()
        return context

    def _buffers_for(self, b: int):
        """(input staging buffer, {output name: tensor}) for batch size ``b``, allocated once."""
        if b not in self._buffers:
            torch = self._torch
            self.context.set_input_shape(self.input_name, (b, *self.input_shape[1:]))
            staging = torch.empty((b, *self.input_shape[1:]), dtype=torch.float32, device=self.device)
            outputs = {n: torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=torch.float32, device=self.device)
                       for n in self.output_names}
            self._buffers[b] = (staging, outputs)
        return self._buffers[b]

    def _execute(self, context=None) -> None:
        if not (context or self.context).execute_async_v3(self.stream.cuda_stream):
            raise HacFailure(f"{self.artifact.name}: TensorRT execution failed")

    def _graph_run(self, bucket: int):
        """(static input, run) of one bucket for ``GraphBuckets``: a context bound to the bucket's buffers."""
        staging, outputs = self._buffers_for(bucket)
        context = self._new_context()
        context.set_input_shape(self.input_name, tuple(staging.shape))
        context.set_tensor_address(self.input_name, staging.data_ptr())
        for name, tensor in outputs.items():
            context.set_tensor_address(name, tensor.data_ptr())

        def run():
            self._execute(context)
            return tuple(outputs[n] for n in self.output_names)

        return staging, run

    def _run(self, batch):
        b = int(batch.shape[0])
        torch = self._torch
        from_numpy = isinstance(batch, np.ndarray)
        if not from_numpy and batch.device != torch.device(self.device):
            raise HacError(f"{self.artifact.name}: input is on {batch.device}, the engine on {self.device}")
        # Our stream waits for whatever produced the input on the caller's stream.
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self._mark(0)
        if self._graphs is not None and self._graphs.covers(b):
            outputs = self._graphs.replay(batch, b, self._mark)  # copy in and replay on the engine's stream
        else:
            outputs = self._run_plain(batch, b)
        return finish(outputs, self.stream, from_numpy, self._mark)

    def _run_plain(self, batch, b: int):
        torch = self._torch
        staging, outputs = self._buffers_for(b)
        with torch.cuda.stream(self.stream):
            if isinstance(batch, np.ndarray):
                staging.copy_(torch.from_numpy(np.ascontiguousarray(batch)))
                src = staging
            else:
                src = batch.contiguous()
                if src.data_ptr() % ALIGNMENT:  # a view into a larger tensor may start anywhere
                    staging.copy_(src)
                    src = staging
        self.context.set_input_shape(self.input_name, tuple(src.shape))
        self.context.set_tensor_address(self.input_name, src.data_ptr())
        for name, tensor in outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self._mark(1)
        self._execute()
        self._mark(2)
        if src is not staging:  # the caller's tensor must outlive the work queued on our stream
            src.record_stream(self.stream)
        return tuple(outputs[n] for n in self.output_names)

    def close(self) -> None:
        with self.one_at_a_time():  # after a call in flight on another thread, whose buffers these are
            self._close()

    def _close(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()  # the buffers below are freed: nothing may still be using them
        if self._graphs is not None:
            self._graphs.clear()
        self._buffers.clear()
        self.context = self.engine = self.runtime = self._scratch = None
