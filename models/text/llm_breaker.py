"""A circuit breaker for the LLM endpoint: closed, open, half-open.

After ``failure_threshold`` consecutive failures the breaker opens and every call is
refused at once (no socket, no thread) for ``reset_after_s``; then it lets exactly one
probe through (half-open). The probe's success closes it, its failure re-opens it for
another full period. A dead endpoint therefore costs one timeout per period, not one
per order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Thread-safe three-state breaker; ``clock`` is injectable for tests.

    Parameters
    ----------
    failure_threshold : int
        Consecutive failures that open the breaker.
    reset_after_s : float
        How long the breaker stays open before one probe is allowed.
    clock : callable
        Monotonic seconds; ``time.monotonic`` by default.
    on_change : callable, optional
        Called with the new state whenever it changes (drives the
        ``riskwire_llm_breaker_open`` gauge).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError("failure_threshold >= 1 and reset_after_s > 0 are required")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def allow(self) -> bool:
        """True if a call may go out now; in half-open only one probe at a time."""
        with self._lock:
            state = self._current()
            if state == "closed":
                return True
            if state == "half_open" and not self._probe_out:
                self._probe_out = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_out = False
            self._set("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            state = self._current()
            if state == "half_open" or self._failures >= self.failure_threshold:
                self._probe_out = False
                self._opened_at = self._clock()
                self._set("open")

    def _current(self) -> BreakerState:
        # Open turns into half-open by time alone; no timer thread is needed.
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_after_s:
            self._set("half_open")
        return self._state

    def _set(self, state: BreakerState) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
