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
_CAPTURE_LOCK = threading.Lock()  # torch: only one capture may be underway in a process at a time


def _precision_knobs(torch) -> list[tuple]:
    """``(settings object, attribute, on value, off value)`` of the FP32 precision of matmuls, cuDNN
    convolutions and cuDNN RNNs: torch's ``fp32_precision`` API where it has one (mixing it with the legacy
    ``allow_tf32`` flags can raise), else those flags. The first two are matmuls and convolutions."""
    b = torch.backends
    if hasattr(getattr(b.cudnn, "conv", None), "fp32_precision"):
        return [(k, "fp32_precision", "tf32", "ieee") for k in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)]
    return [(b.cuda.matmul, "allow_tf32", True, False), (b.cudnn, "allow_tf32", True, False)]


def tf32_state() -> dict:
    """Whether TF32 is on now for CUDA matmuls and cuDNN convolutions (torch's process-wide settings)."""
    import torch

    (matmul, m_attr, m_on, _), (conv, c_attr, c_on, _) = _precision_knobs(torch)[:2]
    return {"matmul": getattr(matmul, m_attr) == m_on, "cudnn": getattr(conv, c_attr) == c_on}


@contextmanager
def tf32_mode(enabled: bool):
    """TF32 on (True) or off for matmuls, convolutions and RNNs while the block runs; restored after.

    Inside the block torch's legacy readers (``allow_tf32``, ``get_float32_matmul_precision``) may raise,
    as torch says when the two APIs are mixed; nothing here reads them."""
    import torch

    knobs = _precision_knobs(torch)
    with _TF32_LOCK:
        before = [getattr(obj, attr) for obj, attr, _, _ in knobs]
        for obj, attr, on, off in knobs:
            setattr(obj, attr, on if enabled else off)
        try:
            yield
        finally:
            for (obj, attr, _, _), value in zip(knobs, before):
                setattr(obj, attr, value)


def tf32_label(enabled: bool) -> str:
    return "TF32 on" if enabled else "TF32 off"


def capture_failed_line(why: str) -> str:
    """What an engine's ``providers`` say when its graphs could not be captured."""
    return f"CUDA graphs off: capture failed ({why}), plain runs"


def batch_buckets(min_batch: int, max_batch: int) -> list[int]:
    """Powers of two within [min_batch, max_batch], and max_batch: ``(1, 16)`` → 1, 2, 4, 8, 16."""
    powers = {2 ** i for i in range(max_batch.bit_length()) if min_batch <= 2 ** i <= max_batch}
    return sorted(powers | {max_batch})


class GraphBuckets:
    """One captured CUDA graph per batch bucket, replayed on ``stream``.

    ``make(bucket)`` returns ``(static_input, run)``: ``run()`` runs the backend once on ``static_input``
    (on the current stream) and returns its output tensors (a tuple); whatever ``run`` holds (a TensorRT context)
    is kept alive with the graph. It is run once plainly (backends finish their shape-dependent setup
    outside a capture), then captured. ``capture()`` returns None when every bucket was captured, else
    the reason it stopped (the engine then runs plainly).
    """

    def __init__(self, stream, buckets: list[int], make: Callable[[int], tuple]):
        self.stream = stream
        self.buckets = list(buckets)
        self._make = make
        self._graphs: dict[int, tuple] = {}

    def covers(self, b: int) -> bool:
        """Whether a batch of ``b`` has a bucket (larger ones run plainly)."""
        return bool(self._graphs) and b <= self.buckets[-1]

    def capture(self) -> str | None:
        import torch

        bucket = self.buckets[0]
        try:
            # The outer stream context restores the thread's stream even when a failed capture's exit raises.
            with _CAPTURE_LOCK, torch.cuda.stream(self.stream):
                for bucket in self.buckets:
                    static_input, run = self._make(bucket)
                    run()
                    self.stream.synchronize()
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                        output = run()
                    self._graphs[bucket] = (graph, static_input, output, run)
        except Exception as e:  # noqa: BLE001 - any capture failure means: run without graphs
            from hac_runtime.errors import one_line

            self._graphs.clear()
            return f"batch {bucket}: {type(e).__name__}: {one_line(e)[:160]}"
        return None

    def replay(self, batch, b: int, mark=lambda i: None):
        """Launch the bucket of ``b`` on the engine's stream with the first ``b`` rows of ``batch`` (a torch
        tensor on the device or a NumPy array); returns the outputs' rows (a tuple), ready once the stream is.

        ``mark(1)`` is called once the input is in, ``mark(2)`` once the graph is launched (stage events)."""
        import numpy as np
        import torch

        bucket = next(k for k in self.buckets if k >= b)
        graph, static_input, output, _ = self._graphs[bucket]
        src = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        with torch.cuda.stream(self.stream):
            static_input[:b].copy_(src)
            if src.is_cuda:  # the caller's tensor must outlive the copy queued on our stream
                src.record_stream(self.stream)
            if b < bucket:
                static_input[b:].zero_()
            mark(1)
            graph.replay()
            mark(2)
        return tuple(o[:b] for o in output)

    def clear(self) -> None:
        self._graphs.clear()


def finish(outputs: tuple, stream, to_numpy: bool, mark=lambda i: None) -> tuple:
    """The engine's outputs as the caller takes them, once ``stream`` has produced them: NumPy (copied out on
    the engine's stream into pinned memory, one synchronisation) or torch tensors (copies the caller's
    stream orders after the engine's). ``mark(3)`` is called after the copy out."""
    import torch

    with torch.cuda.stream(stream):
        if to_numpy:
            hosts = [torch.empty(o.shape, dtype=torch.float32, pin_memory=True) for o in outputs]
            for host, o in zip(hosts, outputs):
                host.copy_(o, non_blocking=True)
            mark(3)
            stream.synchronize()
            return tuple(h.numpy() for h in hosts)
        results = [o.to(torch.float32, copy=True) for o in outputs]
        mark(3)
    caller = torch.cuda.current_stream(outputs[0].device)
    caller.wait_stream(stream)
    for r in results:
        r.record_stream(caller)
    return tuple(results)
