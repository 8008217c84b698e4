"""Dynamic batching across tracks and sources: up to ``max_batch`` clips, waiting at most ``max_wait`` s."""
from __future__ import annotations

import queue
import time

from hac_runtime.pipeline.config import DEFAULTS


class DynamicBatcher:
    """Collect items from a queue into batches. ``None`` in the queue means: flush and stop."""

    def __init__(self, q: "queue.Queue", max_batch: int = DEFAULTS.max_batch, max_wait: float = DEFAULTS.max_wait):
        self.q, self.max_batch, self.max_wait = q, max_batch, max_wait
        self.closed = False

    def next_batch(self) -> list:
        """Block for the first item, then gather more until full or ``max_wait`` passed. [] once closed."""
        if self.closed:
            return []
        first = self.q.get()
        if first is None:
            self.closed = True
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self.q.get(timeout=remaining) if remaining > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.closed = True
                break
            batch.append(item)
        return batch
