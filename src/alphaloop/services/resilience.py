"""Retries with exponential backoff for the remote clients, only on errors worth retrying (the caller
says which: a connect error or a 5xx may pass, a 4xx would fail the same way again).

The circuit breaker the clients put around these calls is
:class:`alphaloop.services.ml.breaker.CircuitBreaker` (one per remote service).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(fn: Callable[[], T], *, attempts: int, retryable: Callable[[BaseException], bool],
          base_delay_s: float = 0.05, max_delay_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
          on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """``fn()``, tried up to ``attempts`` times while it raises a retryable error; the waits double
    from ``base_delay_s`` (capped at ``max_delay_s``) with full jitter, so clients that failed
    together do not come back together. The last error is raised as it was."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if attempt == attempts or not retryable(e):
                raise
            if on_retry is not None:
                on_retry(attempt, e)
            sleep(random.uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))))
    raise AssertionError("unreachable")  # the loop returns or raises
