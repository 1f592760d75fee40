"""Build the services a strategy is lent (ML predictor, sentiment source) from configuration."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alphaloop.core.errors import DataError
from alphaloop.strategy.services import RuntimePredictor, Services

log = logging.getLogger("alphaloop.wiring")


def load_predictor(settings: Any, model: str) -> tuple[RuntimePredictor, dict[str, Any]]:
    """The champion (else latest) version of a registered model, behind the provider chain and a cache."""
    from alphaloop.ml.cache import CachedRuntime
    from alphaloop.ml.registry import CHAMPION
    from alphaloop.ml.runtime import InferenceRuntime
    from alphaloop.store import SqlModelRepository, Store

    with Store.from_settings(settings) as store:
        registry = SqlModelRepository(store).registry(settings.models_dir)
        alias = CHAMPION if registry.backend.get_alias(model, CHAMPION) is not None else None
        artifact = registry.load(model, alias=alias)
    runtime = InferenceRuntime(artifact)
    report = runtime.provider_report()
    log.info("model %s v%s answers on %s", artifact.name, artifact.version, runtime.path)
    return RuntimePredictor(CachedRuntime(runtime)), {"model": artifact.name, "version": artifact.version,
                                                      "task": artifact.task, "horizon": artifact.horizon,
                                                      "path": str(runtime.path),
                                                      "providers": report.to_dict()}


def load_news(engine: Any, path: Path) -> int:
    """Ingest a CSV of news (columns time, instrument, text) into a sentiment engine."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read news CSV: {e}", source=str(path)) from e
    missing = {"time", "instrument", "text"} - set(frame.columns)
    if missing:
        raise DataError(f"news needs columns time, instrument, text; missing {', '.join(sorted(missing))}",
                        source=str(path))
    for k, row in enumerate(frame.itertuples(index=False), start=2):
        try:
            when = pd.Timestamp(row.time)
        except ValueError:
            raise DataError(f"unparseable time {row.time!r}", source=str(path), line=k, field="time") from None
        if not row.text.strip():
            raise DataError("empty text", source=str(path), line=k, field="text")
        engine.ingest(row.instrument, when if when.tzinfo else when.tz_localize("UTC"), row.text)
    return len(frame)


def build_services(settings: Any, model: str | None, news: Path | None, *, live: bool,
                   news_half_life: str = "3D") -> tuple[Services, dict[str, Any]]:
    """Live: sources are asked concurrently under a deadline; backtest: in turn, deterministically.
    ``news_half_life``: how fast a headline's weight decays (pandas duration).

    Live runs use the remote engines when their URLs are configured: the ML runners
    (``TENSORRT_RUNNER_URL`` -> ``ONNX_RUNNER_URL`` -> default, each behind a circuit breaker and the
    prediction cache) and the sentiment engine (``SENTIMENT_ENGINE_URL``, neutral with the reason
    while it is down). Backtests always run in-process, so they stay reproducible."""
    from alphaloop.ml.sentiment import SentimentEngine

    info: dict[str, Any] = {"model": None}
    predictor: Any = None
    remote = live and (settings.onnx_runner_url or settings.tensorrt_runner_url)
    if remote:
        from alphaloop.services.ml.wiring import build_remote_predictor

        predictor = build_remote_predictor(settings, model=model or "")
        info["remote_ml"] = {"model": model or "(runner default)", "tensorrt": settings.tensorrt_runner_url,
                             "onnx": settings.onnx_runner_url}
    elif model:
        predictor, info = load_predictor(settings, model)
    if live and settings.sentiment_engine_url:
        from alphaloop.services.sentiment_client import RemoteSentiment

        sentiment: Any = RemoteSentiment.from_settings(settings)
        info["news_items"] = None  # the sentiment engine holds the news
        if news:
            log.warning("--news ignored: SENTIMENT_ENGINE_URL is set, ingest news into the sentiment engine")
    else:
        sentiment = SentimentEngine(half_life=news_half_life)
        info["news_items"] = load_news(sentiment, news) if news else 0
    return Services(predictor=predictor, sentiment=sentiment, timeout_s=0.25, concurrent=live), info


class PredictionLogger:
    """A live-run recorder that also files each decision's ML prediction in the prediction records
    (with the strategy that asked), so `alphaloop ml accuracy --by strategy` can judge them later."""

    def __init__(self, recorder: Any, models: Any, horizon: int):
        self._recorder, self._models, self._horizon = recorder, models, horizon

    def __getattr__(self, name: str) -> Any:  # everything else is the live repository's
        return getattr(self._recorder, name)

    def record_decision(self, decision: Any, order: Any = None, *, run_id: str) -> bool:
        new = self._recorder.record_decision(decision, order, run_id=run_id)
        ml = next((f for f in decision.factors if f.name == "ml"), None)
        if new and ml is not None and not ml.missing and decision.model is not None:
            self._models.record_predictions([{
                "model": decision.model, "version": decision.model_version, "instrument": decision.instrument,
                "time": decision.time_ns, "horizon": self._horizon, "value": ml.detail["prediction"],
                "confidence": ml.detail["confidence"], "path": decision.inference_path,
                "strategy": decision.strategy}])
        return new
