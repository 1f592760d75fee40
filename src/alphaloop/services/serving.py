"""Running a service: uvicorn on the configured host and port, JSON logs, a clean shutdown on
SIGTERM/SIGINT (stop taking requests, stop the workers, exit 0), and :class:`LoopWorker`, the
background thread most workers are."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from alphaloop.services import metrics

log = logging.getLogger(__name__)


def serve_app(app: Any, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve until SIGTERM/SIGINT; returns after the app's workers stopped (exit status 0: uvicorn
    re-raises the signal after its own clean shutdown, which would end the process by that signal)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            log_config=None, timeout_graceful_shutdown=5)
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _note) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        uvicorn.Server(config).run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _note(signum: int, frame: object) -> None:
    log.info("stopped by signal %d", signum)


class LoopWorker:
    """Calls ``step()`` in a thread until stopped. ``step`` returns how much it did (0 = idle, the
    loop then waits ``idle_s``); an exception is logged and counted, then the loop backs off
    (up to 2 s) and tries again, so a dependency that comes back (Redis, the ML service) is picked
    up without a restart. Healthy while the last step succeeded."""

    def __init__(self, name: str, service: str, step: Callable[[], int], *, idle_s: float = 0.005,
                 on_stop: Callable[[], None] | None = None):
        self.name, self.service, self._step, self.idle_s, self._on_stop = name, service, step, idle_s, on_stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self.steps = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._on_stop is not None:
            self._on_stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                done = self._step()
            except Exception as e:
                metrics.ERRORS.labels(self.service, type(e).__name__).inc()
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.exception("%s: step failed; retrying with backoff", self.name)
                self.last_error = f"{type(e).__name__}: {e}"
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if self.failing_since is not None:
                log.info("%s: recovered after %.1f s", self.name, time.time() - self.failing_since)
            self.failing_since, backoff = None, 0.05
            self.steps += 1
            if not done:
                self._stop.wait(self.idle_s)

    def health(self) -> dict[str, Any]:
        alive = self._thread is not None and self._thread.is_alive()
        ok = alive and self.failing_since is None
        out: dict[str, Any] = {"ok": ok, "alive": alive}
        if self.failing_since is not None:
            out.update(error=self.last_error, failing_for_s=round(time.time() - self.failing_since, 3))
        return out
