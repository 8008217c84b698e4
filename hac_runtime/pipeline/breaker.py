"""A circuit breaker between the batcher and an engine that can fail a batch (``BatchFailed``: a Triton server).

A server that is down answers at once, but one that hangs costs ``--timeout`` per batch, and while the
inference thread waits every source is held back by the bounded request queue (a live camera falls
behind). After ``failures`` batches in a row fail, the engine is not called for a cool-down: batches are
failed at once (counted as not classified, as before), the sources go on. Then one batch tries the engine
again (half-open); a success closes the breaker, a failure opens it for twice as long (up to ``longest``).
"""
from __future__ import annotations

import time

from hac_runtime.errors import BatchFailed


class CircuitBreaker:
    def __init__(self, failures: int = 3, cooldown: float = 5.0, longest: float = 60.0, clock=time.monotonic):
        self.failures, self.cooldown, self.longest, self.clock = failures, cooldown, longest, clock
        self.in_a_row = 0  #: batches failed since the last success
        self.reason: str | None = None  #: the engine's last failure
        self._open_until: float | None = None
        self._wait = cooldown

    @property
    def open(self) -> bool:
        return self._open_until is not None and self.clock() < self._open_until

    def refusal(self) -> BatchFailed | None:
        """The error a batch gets instead of an engine call while the breaker is open, else None (call it)."""
        if not self.open:
            return None
        return BatchFailed(f"not sent: {self.failures} or more batches in a row failed ({self.reason}); "
                           "the engine is tried again after a pause")

    def failed(self, e: BatchFailed) -> None:
        self.in_a_row += 1
        self.reason = str(e)
        if self._open_until is not None:  # the half-open try failed: a longer pause
            self._wait = min(self.longest, self._wait * 2)
        if self.in_a_row >= self.failures:
            self._open_until = self.clock() + self._wait

    def succeeded(self) -> None:
        self.in_a_row, self._open_until, self._wait = 0, None, self.cooldown
