"""``alphaloop serve all``: every service as its own process, started in ``START_ORDER`` (each one
ready — ``GET /health`` answers 200 — before the next starts), stopped in reverse order on
SIGTERM/SIGINT, and the whole deployment stopped with a non-zero exit when a service dies on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alphaloop.core.errors import ConfigError

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    name: str
    host: str
    port: int
    argv: list[str]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class ServiceDied(ConfigError):
    """A service exited while it should have been running."""


class Supervisor:
    def __init__(self, children: list[Child], *, health_timeout_s: float = 120.0,
                 echo: Callable[[str], None] = print, env: dict[str, str] | None = None):
        self.children = children
        self.health_timeout_s = health_timeout_s
        self.echo = echo
        self.env = env
        self._stop = threading.Event()
        self.started: list[Child] = []

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    # ---- start -----------------------------------------------------------------------------------
    def start(self) -> None:
        for child in self.children:
            if self._stop.is_set():
                return
            # its own session: a Ctrl-C at the terminal reaches the supervisor only, which stops the
            # services in reverse order (and they still die with it: _die_with_parent)
            child.proc = subprocess.Popen([sys.executable, "-m", "alphaloop", *child.argv], env=self.env,
                                          preexec_fn=_die_with_parent, start_new_session=True)
            self.started.append(child)
            self._wait_ready(child)
            self.echo(f"{child.name:<12} {child.url}  (pid {child.proc.pid})")

    def _wait_ready(self, child: Child) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        assert child.proc is not None
        while time.monotonic() < deadline and not self._stop.is_set():
            code = child.proc.poll()
            if code is not None:
                raise ServiceDied(f"service {child.name} exited with code {code} while starting")
            if _healthy(child.url + "/health"):
                return
            time.sleep(0.1)
        if not self._stop.is_set():
            raise ServiceDied(f"service {child.name} was not ready at {child.url}/health within "
                              f"{self.health_timeout_s:.0f} s")

    # ---- run and stop ----------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, then watch until asked to stop (0) or a service dies (1)."""
        handlers = {s: signal.signal(s, self.request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            try:
                self.start()
            except ServiceDied as e:
                self.echo(f"error: {e}")
                self.stop_all()
                return 1
            if not self._stop.is_set():
                self.echo("all services ready; SIGTERM or Ctrl-C stops them")
            while not self._stop.wait(0.2):
                for child in self.started:
                    assert child.proc is not None
                    code = child.proc.poll()
                    if code is not None:
                        self.echo(f"error: service {child.name} exited unexpectedly with code {code}; "
                                  "stopping the others")
                        self.stop_all()
                        return 1
            return self.stop_all()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)

    def stop_all(self) -> int:
        """SIGTERM each running service in reverse start order and wait for it; 0 when all exit 0."""
        worst = 0
        for child in reversed(self.started):
            proc = child.proc
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.echo(f"service {child.name} did not stop within {STOP_TIMEOUT_S:.0f} s: killed")
                    proc.kill()
                    proc.wait()
            code = proc.returncode
            if code != 0:
                self.echo(f"service {child.name} exited with code {code}")
                worst = 1
        self.started = []
        return worst


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies (even by SIGKILL), so no
    service outlives it (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def child_env() -> dict[str, str]:
    """The environment children inherit: this one (settings come from it and the config file)."""
    return dict(os.environ)
