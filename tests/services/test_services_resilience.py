"""retry's backoff schedule and which errors it retries (the breaker is the ML clients', tested there)."""

from __future__ import annotations

import pytest

from alphaloop.services.resilience import retry


def _boom() -> None:
    raise ConnectionError("down")


def test_retry_backs_off_exponentially_with_jitter_and_only_on_retryable_errors():
    sleeps: list[float] = []
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("refused")
        return "ok"

    out = retry(flaky, attempts=5, retryable=lambda e: isinstance(e, ConnectionError), base_delay_s=0.1,
                max_delay_s=0.3, sleep=sleeps.append)
    assert out == "ok" and len(attempts) == 4 and len(sleeps) == 3
    # Full jitter: each wait in [0, min(max, base * 2**k)].
    for k, s in enumerate(sleeps):
        assert 0 <= s <= min(0.3, 0.1 * 2 ** k)

    sleeps.clear()
    with pytest.raises(ConnectionError):
        retry(_boom, attempts=3, retryable=lambda e: True, sleep=sleeps.append)
    assert len(sleeps) == 2  # no wait after the last attempt

    calls = []

    def refused() -> None:
        calls.append(1)
        raise ValueError("4xx")

    with pytest.raises(ValueError):
        retry(refused, attempts=5, retryable=lambda e: isinstance(e, ConnectionError), sleep=sleeps.append)
    assert calls == [1]
    with pytest.raises(ValueError):
        retry(lambda: 1, attempts=0, retryable=lambda e: True)
