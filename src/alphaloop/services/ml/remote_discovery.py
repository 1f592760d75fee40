"""The discovery pipeline's ML side over gRPC: :class:`RemoteML` implements
:class:`alphaloop.discovery.pipeline.MLService` with :class:`MLGrpcClient`, so ``alphaloop discover
--ml-url grpc://HOST:PORT`` runs the same six steps against an ML service in another process as
:class:`~alphaloop.discovery.pipeline.InProcessML` runs them in this one.

It answers as the in-process side does: ``evaluate`` gives None while the service has no evaluation
model (the service says FAILED_PRECONDITION with :data:`NO_EVALUATION_MODEL`), NaN for a spec the
model does not cover. Every other remote failure (unreachable service, no discovery loop attached,
refused input) becomes a :class:`RemoteDiscoveryError` naming the service and what failed, so a
discovery run stops before step 6 and leaves strategy states unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryError
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.services.ml.client import MLGrpcClient
from alphaloop.services.ml.errors import RemoteError, RemoteNotReady, RemoteTimeout, RemoteUnavailable
from alphaloop.services.ml.service import NO_EVALUATION_MODEL
from alphaloop.services.ml.wiring import parse_runner_url

FEEDBACK_BATCH = 500  # records per SubmitBacktestFeedback call (far below the message size limit)


class RemoteDiscoveryError(DiscoveryError):
    """The remote ML service failed a discovery call (the message names the service and the call)."""


class RemoteML:
    """:class:`~alphaloop.discovery.pipeline.MLService` over the ML service's gRPC API.

    ``url``: ``grpc://host:port`` (or ``host:port``). ``timeout_s``: one attempt's deadline for the
    quick calls (evaluate, submit); ``retrain_timeout_s``: how long a retraining may take."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, retries: int = 2, retrain_timeout_s: float = 600.0,
                 client: MLGrpcClient | None = None):
        if client is None:
            target = url if "://" in url else f"grpc://{url}"
            kind, address = parse_runner_url(target, "--ml-url")
            if kind != "grpc":
                raise RemoteDiscoveryError(f"--ml-url {url!r}: discovery talks to the ML service over gRPC; "
                                           "give grpc://HOST:PORT")
            client = MLGrpcClient(address, timeout_s=timeout_s, retries=retries, name=target)
        self.client = client
        self.url = url
        self.retrain_timeout_s = retrain_timeout_s

    def _remote(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (RemoteError, RemoteUnavailable, RemoteTimeout) as e:
            raise RemoteDiscoveryError(f"ML service {self.url}: {what} failed: {e}") from e

    def check_reachable(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the service for its feedback status: a clear error now, before any work, when it is not
        there or has no discovery loop attached. Returns the status."""
        try:
            return self.client.feedback_status(limit=1, timeout=timeout)
        except RemoteNotReady as e:
            raise RemoteDiscoveryError(f"ML service {self.url} has no discovery loop attached (started with "
                                       f"--no-discovery?): {e}") from e
        except (RemoteError, RemoteUnavailable, RemoteTimeout) as e:
            raise RemoteDiscoveryError(f"ML service {self.url} cannot be reached for discovery: {e}") from e

    # ---- the MLService protocol -----------------------------------------------------------------
    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]:
        records = list(records)
        accepted: list[str] = []
        for i in range(0, len(records), FEEDBACK_BATCH):
            batch = records[i:i + FEEDBACK_BATCH]
            accepted += self._remote("SubmitBacktestFeedback", lambda b=batch: self.client.submit_feedback(b))
        return accepted

    def retrain(self, *, force: bool = False, seed: int = 0) -> Any:
        return self._remote("RetrainEvaluator", lambda: self.client.retrain_evaluator(
            force=force, seed=seed, timeout=self.retrain_timeout_s))

    def evaluate(self, specs: Sequence[StrategySpec], regime: Mapping[str, float]) -> np.ndarray | None:
        specs = list(specs)
        if not specs:
            return np.empty(0)
        try:
            scores = self.client.evaluate(specs, regime)
        except RemoteNotReady as e:
            if NO_EVALUATION_MODEL in str(e):
                return None  # as in-process before the first training
            raise RemoteDiscoveryError(f"ML service {self.url}: EvaluateStrategy failed: {e}") from e
        except (RemoteError, RemoteUnavailable, RemoteTimeout) as e:
            raise RemoteDiscoveryError(f"ML service {self.url}: EvaluateStrategy failed: {e}") from e
        return np.asarray(scores, dtype=np.float64)

    # ---- more of the service's discovery side ---------------------------------------------------
    def generate(self, family: str, n: int, keep: int, seed: int = 0,
                 regime: Mapping[str, float] | None = None) -> list[tuple[StrategySpec, float]]:
        return self._remote("GenerateStrategy", lambda: self.client.generate(family, n, keep, seed, regime or {}))

    def feedback_status(self, job_id: str | None = None, limit: int = 10) -> dict[str, Any]:
        return self._remote("GetFeedbackStatus", lambda: self.client.feedback_status(job_id, limit=limit))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteML:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["RemoteDiscoveryError", "RemoteML"]
