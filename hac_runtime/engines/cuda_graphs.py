"""CUDA-graph replay per batch bucket, and TF32 made explicit, for the engines that run on torch CUDA streams.

**Buckets.** A captured graph fixes its shapes and addresses (TensorRT's "CUDA Graphs" rule, torch's
static-input rule), so a graph is captured per bucket — powers of two from the engine's minimum batch up
to its maximum, and the maximum — each with a static input buffer; a batch is padded up to its bucket
and the outputs sliced back.

**Capture at load.** Every bucket is captured when the engine opens, on the engine's own stream, with
``capture_error_mode="thread_local"``: in the pipeline other threads (GPU face warps) use CUDA while an
engine is being opened, and the default ``"global"`` mode fails the capture on their work. When a
capture fails anyway, the engine runs plainly and says so in one line (``fallback``), as trtexec does;
it never fails the run for it.

**TF32.** ``tf32_mode(False)`` turns TF32 off for cuBLAS matmuls and cuDNN convolutions while a block
runs (torch's defaults: matmul off, cuDNN *on*), so an "FP32" figure is FP32. The flags are process-wide:
the block holds a lock so that two engines cannot interleave their settings.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable

_TF32_LOCK = threading.RLock()


def tf32_state() -> dict:
    """Whether TF32 is on now for CUDA matmuls and cuDNN convolutions (torch's process-wide flags)."""
    import torch

    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


@contextmanager
def tf32_mode(enabled: bool):
    """TF32 on (True) or off for both matmuls and convolutions while the block runs; restored after."""
    import torch

    with _TF32_LOCK:
        before = tf32_state()
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before["matmul"]
            torch.backends.cudnn.allow_tf32 = before["cudnn"]


def tf32_label(enabled: bool) -> str:
    return "TF32 on" if enabled else "TF32 off"


def batch_buckets(min_batch: int, max_batch: int) -> list[int]:
    """Powers of two within [min_batch, max_batch], and max_batch: ``(1, 16)`` → 1, 2, 4, 8, 16."""
    powers = {2 ** i for i in range(max_batch.bit_length()) if min_batch <= 2 ** i <= max_batch}
    return sorted(powers | {max_batch})


class GraphBuckets:
    """One captured CUDA graph per batch bucket, replayed on ``stream``.

    ``make(bucket)`` returns ``(static_input, run)``: ``run()`` runs the backend once on ``static_input``
    (on the current stream) and returns the output tensor. It is run once plainly (backends finish their
    shape-dependent setup outside a capture), then captured. ``capture()`` returns None when every bucket
    was captured, else the reason it stopped (the engine then runs plainly).
    """

    def __init__(self, stream, buckets: list[int], make: Callable[[int], tuple]):
        self.stream = stream
        self.buckets = list(buckets)
        self._make = make
        self._graphs: dict[int, tuple] = {}

    def capture(self) -> str | None:
        import torch

        try:
            for bucket in self.buckets:
                static_input, run = self._make(bucket)
                self.stream.wait_stream(torch.cuda.current_stream(self.stream.device))
                with torch.cuda.stream(self.stream):
                    run()
                self.stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                    output = run()
                self._graphs[bucket] = (graph, static_input, output)
        except Exception as e:  # noqa: BLE001 - any capture failure means: run without graphs
            from hac_runtime.errors import one_line

            self._graphs.clear()
            return f"batch {bucket}: {type(e).__name__}: {one_line(e)[:160]}"
        return None

    def replay(self, batch, b: int, mark=lambda i: None):
        """Outputs of the first ``b`` rows of ``batch`` (a torch tensor on the device or a NumPy array).

        ``mark(1)`` is called once the input is in, ``mark(2)`` once the graph is launched (stage events)."""
        import numpy as np
        import torch

        bucket = next(k for k in self.buckets if k >= b)
        graph, static_input, output = self._graphs[bucket]
        src = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        self.stream.wait_stream(torch.cuda.current_stream(self.stream.device))
        with torch.cuda.stream(self.stream):
            static_input[:b].copy_(src)
            if b < bucket:
                static_input[b:].zero_()
            mark(1)
            graph.replay()
            mark(2)
        self.stream.synchronize()
        return output[:b]

    def clear(self) -> None:
        self._graphs.clear()
