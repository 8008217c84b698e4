"""TensorRT engine: named I/O tensors bound to torch CUDA buffers, ``execute_async_v3`` on its own stream."""
from __future__ import annotations

import numpy as np

from hac_runtime.engines.base import Engine, parse_device
from hac_runtime.engines.trt.loader import load_trt_engine, require_tensorrt
from hac_runtime.errors import HacError, HacFailure


class TrtEngine(Engine):
    """A serialized TensorRT engine on one CUDA device. Buffers are preallocated per batch size."""

    kind = "trt"

    def __init__(self, artifact, manifest: dict, device: str = "auto"):
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

    def infer(self, batch):
        b = self.check_input(batch)
        torch = self._torch
        staging, outputs = self._buffers_for(b)
        from_numpy = isinstance(batch, np.ndarray)
        if from_numpy:
            staging.copy_(torch.from_numpy(np.ascontiguousarray(batch)))
            src = staging
        else:
            if batch.device != torch.device(self.device):
                raise HacError(f"{self.artifact.name}: input is on {batch.device}, the engine on {self.device}")
            src = batch.contiguous()
        # Our stream waits for whatever produced the input on the caller's stream.
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self.context.set_input_shape(self.input_name, tuple(src.shape))
        self.context.set_tensor_address(self.input_name, src.data_ptr())
        for name, tensor in outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise HacFailure(f"{self.artifact.name}: TensorRT execution failed")
        self.stream.synchronize()
        logits = outputs[self.output_name]
        return logits.cpu().numpy() if from_numpy else logits.clone()

    def close(self) -> None:
        self._buffers.clear()
        self.context = self.engine = self.runtime = None
