"""TensorRT engine: named I/O tensors bound to torch CUDA buffers, ``execute_async_v3`` on its own stream.

With ``cuda_graph=True`` each batch bucket (powers of two up to the profile's
maximum) is captured once into a CUDA graph after one plain run, and replayed
afterwards: a batch is padded up to its bucket in the bucket's own input buffer,
so the captured addresses and shapes stay valid (TensorRT's "CUDA Graphs" rule:
re-capture whenever shapes or addresses change); each bucket's graph has its own
execution context.
"""
from __future__ import annotations

import numpy as np

from hac_runtime.engines.base import Engine, parse_device
from hac_runtime.engines.trt.loader import load_trt_engine, require_tensorrt
from hac_runtime.errors import HacError, HacFailure


class TrtEngine(Engine):
    """A serialized TensorRT engine on one CUDA device. Buffers are preallocated per batch size."""

    kind = "trt"

    def __init__(self, artifact, manifest: dict, device: str = "auto", cuda_graph: bool = False):
        super().__init__(artifact, manifest, device)
        kind, index = parse_device(device)
        if kind == "cpu":
            raise HacError(f"{self.artifact.name}: TensorRT engines run on a CUDA GPU, not on the CPU")
        require_tensorrt()
        import tensorrt as trt
        import torch

        self._torch = torch
        self.index = index or 0
        self.device = f"cuda:{self.index}"
        with torch.cuda.device(self.index):
            self.runtime, self.engine = load_trt_engine(self.artifact, manifest, self.index)
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(device=self.index)  # not the default stream
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._buffers: dict[int, tuple] = {}
        self.cuda_graph = cuda_graph
        self._graphs: dict[int, object] = {}
        top = self.max_batch or self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0]
        self.buckets = sorted({b for b in (2 ** i for i in range(top.bit_length())) if self.min_batch <= b <= top} | {top})

    @property
    def providers(self) -> list[str]:
        return ["tensorrt+cudagraph" if self.cuda_graph else "tensorrt"]

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

    def _graph_for(self, bucket: int):
        """The CUDA graph of one batch bucket, captured on first use after one plain run.

        Each graph gets its own execution context: a captured graph fixes its context's shapes and
        addresses, and re-binding a shared context for another bucket could change what it reads.
        """
        if bucket not in self._graphs:
            torch = self._torch
            staging, outputs = self._buffers_for(bucket)
            context = self.engine.create_execution_context()
            context.set_input_shape(self.input_name, tuple(staging.shape))
            context.set_tensor_address(self.input_name, staging.data_ptr())
            for name, tensor in outputs.items():
                context.set_tensor_address(name, tensor.data_ptr())
            self._execute(context)  # TensorRT finishes its shape-dependent setup outside the capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self._execute(context)
            self._graphs[bucket] = (graph, context)
        return self._graphs[bucket][0]

    def _run(self, batch):
        b = int(batch.shape[0])
        torch = self._torch
        from_numpy = isinstance(batch, np.ndarray)
        if not from_numpy and batch.device != torch.device(self.device):
            raise HacError(f"{self.artifact.name}: input is on {batch.device}, the engine on {self.device}")
        if self.cuda_graph:
            logits = self._replay(batch, b)
        else:
            logits = self._run_plain(batch, b)
        return logits.cpu().numpy() if from_numpy else logits.clone()

    def _run_plain(self, batch, b: int):
        torch = self._torch
        staging, outputs = self._buffers_for(b)
        if isinstance(batch, np.ndarray):
            staging.copy_(torch.from_numpy(np.ascontiguousarray(batch)))
            src = staging
        else:
            src = batch.contiguous()
            if src.data_ptr() % 256:  # TensorRT needs 256-byte aligned addresses: a view may not be
                staging.copy_(src)
                src = staging
        # Our stream waits for whatever produced the input on the caller's stream.
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self.context.set_input_shape(self.input_name, tuple(src.shape))
        self.context.set_tensor_address(self.input_name, src.data_ptr())
        for name, tensor in outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self._execute()
        self.stream.synchronize()
        return outputs[self.output_name]

    def _replay(self, batch, b: int):
        torch = self._torch
        bucket = next(k for k in self.buckets if k >= b)
        graph = self._graph_for(bucket)
        staging, outputs = self._buffers_for(bucket)
        src = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            staging[:b].copy_(src)
            if b < bucket:
                staging[b:].zero_()
            graph.replay()
        self.stream.synchronize()
        return outputs[self.output_name][:b]

    def close(self) -> None:
        self._graphs.clear()
        self._buffers.clear()
        self.context = self.engine = self.runtime = None
