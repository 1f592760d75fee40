"""The discovery loop the ML service hosts: :func:`build_discovery` gives the object its discovery
RPCs (EvaluateStrategy, SubmitBacktestFeedback, GenerateStrategy, RetrainEvaluator,
GetFeedbackStatus) delegate to: an :class:`~alphaloop.discovery.pipeline.InProcessML` over a
:class:`~alphaloop.discovery.retraining.FeedbackLoop` on the project database (feedback and jobs in
``SqlFeedbackRepository``, models in the project's registry), with the retraining scheduler.

It is also a service worker: ``build_app(..., discovery=build_discovery(settings))`` starts the
scheduler with the app and stops it (and closes the database) when the app stops.
"""

from __future__ import annotations

import logging
from typing import Any

from alphaloop.core.errors import ConfigError
from alphaloop.discovery.pipeline import InProcessML
from alphaloop.discovery.retraining import FeedbackLoop, RetrainPolicy

log = logging.getLogger(__name__)
DEFAULT_RETRAIN_INTERVAL_S = 60.0  # how often the scheduler asks the policy whether a retraining is due


class DiscoveryBackend(InProcessML):
    """:class:`InProcessML` that runs the loop's scheduler while the service runs (``retrain_interval_s``
    None: no scheduler, retraining only when asked over gRPC)."""

    name = "discovery"

    def __init__(self, loop: FeedbackLoop, *, store: Any = None, retrain_interval_s: float | None = None):
        super().__init__(loop)
        if retrain_interval_s is not None and not retrain_interval_s > 0:
            raise ConfigError(f"the retraining scheduler's interval must be > 0 seconds, got {retrain_interval_s}")
        self.store = store
        self.retrain_interval_s = retrain_interval_s

    def start(self) -> None:
        if self.retrain_interval_s is not None:
            self.loop.start_scheduler(self.retrain_interval_s)
            log.info("retraining scheduler every %.0f s (policy: %s)", self.retrain_interval_s, self.loop.policy)

    def stop(self) -> None:
        self.loop.stop_scheduler()
        if self.store is not None:
            self.store.close()

    def health(self) -> dict[str, Any]:
        champion = self.loop.evaluator()
        return {"ok": True, "feedback_records": self.loop.repo.count_feedback(),
                "evaluation_model": None if champion is None else champion.version,
                "scheduler_interval_s": self.retrain_interval_s}


def build_discovery(settings: Any, *, policy: RetrainPolicy | None = None,
                    retrain_interval_s: float | None = DEFAULT_RETRAIN_INTERVAL_S, store: Any = None,
                    registry: Any = None) -> DiscoveryBackend:
    """The ML service's discovery side on ``settings``' database and models folder. ``policy``: when a
    retraining is due (default :class:`RetrainPolicy`: 50 new records, or 24 h); ``retrain_interval_s``:
    the scheduler's period (None: no scheduler); ``store`` / ``registry``: share the service's own
    (default: opened here, and closed when the worker stops)."""
    from alphaloop.store import SqlModelRepository, Store
    from alphaloop.store.feedback_repository import SqlFeedbackRepository

    owned = None
    if store is None:
        settings.ensure_dirs()
        store = owned = Store.from_settings(settings)
    try:
        if registry is None:
            registry = SqlModelRepository(store).registry(settings.models_dir)
        loop = FeedbackLoop(SqlFeedbackRepository(store), registry, policy or RetrainPolicy())
    except Exception:
        if owned is not None:
            owned.close()
        raise
    return DiscoveryBackend(loop, store=owned, retrain_interval_s=retrain_interval_s)


__all__ = ["DEFAULT_RETRAIN_INTERVAL_S", "DiscoveryBackend", "build_discovery"]
