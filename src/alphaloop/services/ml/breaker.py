"""A circuit breaker per remote service: after ``failure_threshold`` consecutive failures it opens and
calls fail at once (no connection attempt, no timeout to wait out); after ``reset_timeout_s`` it lets
one trial call through (half-open): success closes it, failure opens it again for another timeout.

Why: a dead ML runner would otherwise cost every decision a connection attempt and its retries; with
the breaker open the failover goes straight to the next runner, and one probe per timeout finds out
when the runner is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from alphaloop.services.ml.errors import CircuitOpenError

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Thread-safe. ``clock`` returns monotonic seconds (inject one in tests)."""

    def __init__(self, name: str, *, failure_threshold: int = 3, reset_timeout_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not reset_timeout_s > 0:
            raise ValueError(f"reset_timeout_s must be > 0, got {reset_timeout_s}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self.opened = 0  # times it opened
        self.rejected = 0  # calls refused while open

    @property
    def state(self) -> str:
        """closed, open or half_open (an open breaker whose timeout passed reads half_open)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open only one trial at a time is let through."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            self.rejected += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._trial_running = CLOSED, 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                if self._state != OPEN:
                    self.opened += 1
                self._state, self._opened_at, self._trial_running = OPEN, self._clock(), False

    def release(self) -> None:
        """A let-through call ended with neither verdict (the caller's own bad input): free the trial."""
        with self._lock:
            self._trial_running = False

    def call(self, fn: Callable[[], T], *, is_failure: Callable[[BaseException], bool] = lambda e: True) -> T:
        """Run ``fn`` through the breaker. Exceptions for which ``is_failure`` is false (bad input) pass
        through without counting against the service."""
        if not self.allow():
            raise CircuitOpenError(f"{self.name}: circuit open after {self._failures} consecutive failures; "
                                   f"next trial within {self.reset_timeout_s:g} s")
        try:
            out = fn()
        except BaseException as e:
            if is_failure(e):
                self.record_failure()
            else:
                self.release()
            raise
        self.record_success()
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "consecutive_failures": self._failures,
                "opened": self.opened, "rejected": self.rejected}


__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]
