"""Feedback records: what one finished backtest teaches the ML service.

A record holds the strategy spec, the data range it ran on, the market-regime features of that
range (:mod:`.regime`) and its out-of-sample metrics and ``backtest_score``. Its ``id`` is assigned
by the producer (a stored run's id) and is stable, so sending the same record twice is harmless:
sinks deduplicate by id and count an id they already hold as accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryInputError
from alphaloop.discovery.regime import REGIME_FEATURES, regime_features
from alphaloop.discovery.scoring import backtest_score as score_returns

FIELDS = ("id", "spec", "instrument", "start_ns", "end_ns", "n_bars", "regime", "metrics", "backtest_score")
MAX_ID_LENGTH = 128


def _fail(record_id: Any, name: str, expected: str, got: Any) -> DiscoveryInputError:
    who = f"feedback record {record_id!r}" if isinstance(record_id, str) and record_id else "feedback record"
    return DiscoveryInputError(f"{who}: field '{name}' must be {expected}, got {got!r}")


def _real(record_id: Any, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise _fail(record_id, name, "a finite number", value)
    x = float(value)
    if not math.isfinite(x):
        raise _fail(record_id, name, "a finite number", value)
    return x


def _integer(record_id: Any, name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise _fail(record_id, name, f"an integer >= {lo}", value)
    return int(value)


def _numbers(record_id: Any, name: str, value: Any, required: tuple[str, ...] = ()) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _fail(record_id, name, "a mapping of name -> number", value)
    out: dict[str, float] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise _fail(record_id, name, "keyed by non-empty strings", k)
        out[k] = _real(record_id, f"{name}.{k}", v)
    missing = [k for k in required if k not in out]
    if missing:
        raise _fail(record_id, name, f"a mapping with keys {', '.join(required)} (missing {', '.join(missing)})",
                    sorted(out))
    return out


def _spec(record_id: Any, value: Any) -> StrategySpec:
    if isinstance(value, StrategySpec):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise _fail(record_id, "spec", "a StrategySpec or a mapping with name and params", value)
    name, params = value.get("name"), value.get("params", {})
    if not isinstance(name, str) or not name:
        raise _fail(record_id, "spec.name", "a non-empty string", name)
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise _fail(record_id, "spec.params", "a mapping keyed by parameter names", params)
    for k, v in params.items():  # what JSON keeps as it is: the record must round-trip exactly
        if v is not None and not isinstance(v, bool | int | float | str):
            raise _fail(record_id, f"spec.params.{k}", "a number, string, boolean or null", v)
        if isinstance(v, float) and not math.isfinite(v):
            raise _fail(record_id, f"spec.params.{k}", "finite", v)
    return StrategySpec(name, dict(sorted(params.items())))


@dataclass(frozen=True)
class FeedbackRecord:
    """One backtest's lesson. Construction validates every field (``DiscoveryInputError`` names it):
    ``regime`` must hold every ``REGIME_FEATURES`` key, ``metrics`` finite numbers only,
    ``backtest_score`` lies in [0, 1], ``start_ns <= end_ns`` (UTC nanoseconds)."""

    id: str
    spec: StrategySpec
    instrument: str
    start_ns: int
    end_ns: int
    n_bars: int
    regime: dict[str, float] = field(hash=False)
    metrics: dict[str, float] = field(hash=False)
    backtest_score: float

    def __post_init__(self) -> None:
        rid = self.id
        if not isinstance(rid, str) or not rid.strip() or len(rid) > MAX_ID_LENGTH:
            raise _fail(None, "id", f"a non-empty string of at most {MAX_ID_LENGTH} characters", rid)
        if not isinstance(self.instrument, str) or not self.instrument:
            raise _fail(rid, "instrument", "a non-empty string", self.instrument)
        start = _integer(rid, "start_ns", self.start_ns, -(2**63))
        end = _integer(rid, "end_ns", self.end_ns, -(2**63))
        if end < start:
            raise _fail(rid, "end_ns", f"at or after start_ns {start}", end)
        score = _real(rid, "backtest_score", self.backtest_score)
        if not 0.0 <= score <= 1.0:
            raise _fail(rid, "backtest_score", "within [0, 1]", self.backtest_score)
        values = {"spec": _spec(rid, self.spec), "start_ns": start, "end_ns": end,
                  "n_bars": _integer(rid, "n_bars", self.n_bars, 1),
                  "regime": _numbers(rid, "regime", self.regime, REGIME_FEATURES),
                  "metrics": _numbers(rid, "metrics", self.metrics), "backtest_score": score}
        for k, v in values.items():  # normalised copies: the caller's dicts cannot change the record
            object.__setattr__(self, k, v)

    def __hash__(self) -> int:  # equal records share their id; the dict fields are not hashable
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; ``from_dict(to_dict())`` gives an equal record."""
        return {"id": self.id, "spec": self.spec.to_dict(), "instrument": self.instrument,
                "start_ns": self.start_ns, "end_ns": self.end_ns, "n_bars": self.n_bars,
                "regime": dict(self.regime), "metrics": dict(self.metrics), "backtest_score": self.backtest_score}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedbackRecord:
        """Validate and build; a missing, unknown or malformed field raises ``DiscoveryInputError`` naming it."""
        if not isinstance(d, Mapping):
            raise DiscoveryInputError(f"feedback record must be a mapping, got {type(d).__name__}")
        rid = d.get("id")
        missing = [k for k in FIELDS if k not in d]
        if missing:
            raise _fail(rid, missing[0], "present", None) if len(missing) == 1 else DiscoveryInputError(
                f"feedback record {rid!r}: missing fields {', '.join(repr(k) for k in missing)}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise DiscoveryInputError(f"feedback record {rid!r}: unknown field(s) {', '.join(map(repr, unknown))}; "
                                      f"expected {', '.join(FIELDS)}")
        return cls(**{k: d[k] for k in FIELDS})


@runtime_checkable
class FeedbackSink(Protocol):
    """Where feedback goes: the in-process :class:`~alphaloop.discovery.retraining.FeedbackLoop` or the
    ML service's gRPC client. Returns the ids accepted (ids it already held count as accepted)."""

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> list[str]: ...


# ---------------------------------------------------------------------- from a backtest run


def _ns(value: Any) -> int:
    ts = pd.Timestamp(value)
    return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).value)


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the median bar spacing: 252 for daily bars (365 when weekends trade, as
    the backtest metrics count), scaled up for intraday bars."""
    if len(index) < 2:
        return 252.0
    step = pd.Series(index).diff().median().total_seconds()
    has_weekend = bool((pd.DatetimeIndex(index).day_of_week >= 5).any())
    days = 365.0 if has_weekend else 252.0
    return days * 86400.0 / step if step > 0 else days


def _finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            continue
        if math.isfinite(float(v)):
            out[str(k)] = float(v)
    return out


def feedback_from_run(run: Any, bars: pd.DataFrame, *, record_id: str | None = None,
                      instrument: str | None = None, returns: Any = None, n_trials: int = 1,
                      backtest_score: float | None = None) -> FeedbackRecord:
    """A record from a stored backtest run and the bars it ran on.

    ``run`` is a ``BacktestResult`` (``Store.get_run``) or any object with ``run_id``, ``spec``,
    ``instruments``, ``start``, ``end`` and ``metrics``; ``bars`` are the run's bars (one
    instrument; cut to the run's range here). ``backtest_score`` is taken, in order, from the
    argument, from the run's own ``backtest_score`` (set by the discovery evaluator, deflated for
    its trials), or computed from the run's per-bar equity returns (``returns``, else its
    ``equity`` curve) with :func:`alphaloop.discovery.scoring.backtest_score` over ``n_trials``.
    Metrics keep every finite number of the run's metrics and add ``sharpe``, ``total_return``
    (fraction), ``max_drawdown`` (positive fraction) and ``n_trades``.
    """
    rid = record_id or getattr(run, "run_id", None)
    if not rid:
        raise DiscoveryInputError("the run has no run_id: store it first or pass record_id")
    instruments = list(getattr(run, "instruments", []) or [])
    if instrument is None:
        if len(instruments) != 1:
            raise DiscoveryInputError(f"run {rid}: feedback needs one instrument, the run has "
                                      f"{len(instruments)} ({', '.join(instruments)}); pass instrument=")
        instrument = instruments[0]
    start, end = pd.Timestamp(run.start), pd.Timestamp(run.end)
    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise DiscoveryInputError(f"run {rid}: bars must be a DataFrame with a DatetimeIndex")
    idx = bars.index if bars.index.tz is not None else bars.index.tz_localize("UTC")
    lo = start.tz_localize("UTC") if start.tzinfo is None else start
    hi = end.tz_localize("UTC") if end.tzinfo is None else end
    window = bars[(idx >= lo) & (idx <= hi)]
    if window.empty:
        raise DiscoveryInputError(f"run {rid}: the bars ({bars.index[0]} .. {bars.index[-1]}) do not cover the "
                                  f"run's range {start} .. {end}")
    window.attrs.update(bars.attrs)
    try:
        regime = regime_features(window)
    except DiscoveryInputError as e:
        raise DiscoveryInputError(f"run {rid}: {e}") from e

    raw = dict(getattr(run, "metrics", {}) or {})
    metrics = _finite_metrics(raw)
    for src, dst, scale in (("return_pct", "total_return", 0.01), ("max_drawdown_pct", "max_drawdown", -0.01)):
        if src in metrics:
            metrics[dst] = abs(metrics[src] * scale) if dst == "max_drawdown" else metrics[src] * scale
    if "n_trades" not in metrics:
        metrics["n_trades"] = float(getattr(run, "n_trades", 0) or 0)

    score = backtest_score if backtest_score is not None else getattr(run, "backtest_score", None)
    if score is None:
        if returns is None:
            equity = getattr(run, "equity", None)
            if equity is None or "equity" not in getattr(equity, "columns", ()):
                raise DiscoveryInputError(f"run {rid}: no backtest_score and no equity curve to compute one from; "
                                          "pass the full result (Store.get_run) or returns=")
            e = equity["equity"].to_numpy(dtype=np.float64)
            prev = e[:-1]
            returns = np.divide(e[1:] - prev, prev, out=np.zeros(len(prev)), where=prev > 0)
        r = np.asarray(returns, dtype=np.float64)
        if len(r) < 2:
            raise DiscoveryInputError(f"run {rid}: {len(r)} returns are too few to score")
        dd = metrics.get("max_drawdown")
        score = score_returns(r, n_trials=n_trials, max_drawdown=None if dd is None else min(dd, 1.0),
                              periods_per_year=periods_per_year(window.index)).score
    return FeedbackRecord(id=str(rid), spec=run.spec, instrument=str(instrument), start_ns=_ns(start),
                          end_ns=_ns(end), n_bars=int(getattr(run, "n_bars", len(window)) or len(window)),
                          regime=regime, metrics=metrics, backtest_score=float(score))


def records_from_dicts(items: Sequence[Any]) -> list[FeedbackRecord]:
    """Records from records or their dicts; a bad one raises naming its position and field."""
    out = []
    for k, item in enumerate(items):
        if isinstance(item, FeedbackRecord):
            out.append(item)
            continue
        try:
            out.append(FeedbackRecord.from_dict(item))
        except DiscoveryInputError as e:
            raise DiscoveryInputError(f"record {k}: {e}") from e
    return out


__all__ = ["FIELDS", "FeedbackRecord", "FeedbackSink", "feedback_from_run", "periods_per_year",
           "records_from_dicts"]
