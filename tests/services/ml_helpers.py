"""Shared by the ML service tests: a real LightGBM model trained on the GOOG fixture and exported to
ONNX, a registry in a throwaway home, the service run for real (uvicorn on a free loopback port in a
thread, or ``python -m alphaloop.services.ml`` in a subprocess), and polling helpers."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from service_test_helpers import ThreadServer as HttpThreadServer
from service_test_helpers import free_ports

from alphaloop.core.config import load_settings
from alphaloop.data import load_bars

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
GOOG = FIXTURES / "GOOG_daily.csv"
MODEL = "goog-lgbm"
FAST_LGBM = {"n_estimators": 25, "num_leaves": 7}  # the tests check plumbing, not forecasting skill


@functools.cache
def goog() -> Any:
    return load_bars(GOOG, instrument="GOOG")


@functools.cache
def trained() -> Any:
    """One TrainResult per test session (LightGBM regression, horizon 5)."""
    from alphaloop.ml.training import train_model

    return train_model(goog(), model="lightgbm", task="regression", horizon=5, params=FAST_LGBM)


@functools.cache
def artifact(name: str = MODEL) -> Any:
    from alphaloop.ml.export import export_model

    return export_model(trained(), name)


@functools.cache
def feature_rows(n: int = 64) -> np.ndarray:
    """The last ``n`` complete feature rows of GOOG (float64, the schema's order)."""
    from alphaloop.ml.features import make_features

    x = make_features(goog()).dropna().to_numpy()
    return x[-n:]


def onnx_direct(rows: np.ndarray) -> np.ndarray:
    """The model run with onnxruntime directly, one session.run per row (the independent reference)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(artifact().onnx, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.array([float(sess.run(None, {name: r.reshape(1, -1).astype(np.float32)})[0].ravel()[0])
                     for r in rows])


def onnx_direct_batch(rows: np.ndarray) -> np.ndarray:
    """The model run with onnxruntime directly on all rows at once (one session.run)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(artifact().onnx, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.asarray(sess.run(None, {name: rows.astype(np.float32)})[0], dtype=np.float64).ravel()


def settings_for(home: Path, **env: str) -> Any:
    return load_settings(env={"ALPHALOOP_HOME": str(home), **env})


def register_model(home: Path, name: str = MODEL, *, promote: bool = True) -> int:
    """Register the trained model in the registry of ``home``; returns its version."""
    from alphaloop.store import SqlModelRepository, Store

    settings = settings_for(home)
    settings.ensure_dirs()
    with Store.from_settings(settings) as store:
        registry = SqlModelRepository(store).registry(settings.models_dir)
        version = registry.register(artifact(name)).version
        if promote:
            registry.promote(name, version)
    return version


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as e:  # not up yet
            last = e
        else:
            if value:
                return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class ThreadServer(HttpThreadServer):
    """The ML app served by uvicorn in a thread, with the address of the gRPC server it runs."""

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.app.state.grpc.port}"


class ServiceProcess:
    """``python -m alphaloop.services.ml`` in a subprocess on fixed ports (so a restart reuses them)."""

    def __init__(self, home: Path, *, model: str = MODEL, http_port: int | None = None,
                 grpc_port: int | None = None, service: str = "ml"):
        self.home, self.model, self.service = home, model, service
        ports = free_ports(2)
        self.http_port = http_port or ports[0]
        self.grpc_port = grpc_port or ports[1]
        self.proc: subprocess.Popen | None = None
        self.log = home / f"{service}-service.log"

    def start(self) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
        env["ALPHALOOP_HOME"] = str(self.home)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alphaloop.services.ml", "--service", self.service, "--model", self.model,
                 "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def wait_serving(self, probe: Any, timeout: float = 60.0) -> None:
        """Until the gRPC health service says SERVING; on failure the error carries the service's log."""
        try:
            wait_for(lambda: probe.health() == "SERVING", timeout=timeout, what=f"the {self.service} service")
        except AssertionError as e:
            exited = None if self.proc is None else self.proc.poll()
            raise AssertionError(f"{e}; process exit code {exited}; log:\n{self.logs()[-4000:]}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
