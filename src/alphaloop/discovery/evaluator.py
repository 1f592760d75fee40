"""Out-of-sample evaluation of strategies: backtest, cut into walk-forward windows, score, rank.

Each strategy spec is backtested once per instrument over all bars (one executor task each). A
fixed spec has nothing to fit, so its walk-forward record is its returns on the *test* windows
only (the train bars before each one serve as history); those out-of-sample returns, stitched
across windows and instruments, are what :func:`~alphaloop.discovery.scoring.backtest_score`
judges, deflated for every trial the study has run (the DSR), so picking the best of many
candidates cannot make luck look like skill. :meth:`Evaluator.walk_forward_selection` chooses
among candidates on each train window and scores the choice on the following test window: the
honest out-of-sample figure of the selection itself. The candidates' test returns side by side
also give the study's Probability of Backtest Overfitting (CSCV).

Because a strategy run from bar 0 only ever sees bars up to the current one, slicing one full-length
run's per-bar returns by window is the same as running it continuously through the windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.executors import BacktestTask, BrokerSettings, Executor, TaskResult
from alphaloop.discovery.feedback import periods_per_year
from alphaloop.discovery.overfitting import probability_of_backtest_overfitting
from alphaloop.discovery.scoring import (
    ScoreBreakdown,
    backtest_score,
    composite_score,
    max_drawdown,
    return_stats,
)
from alphaloop.discovery.walk_forward import Window, walk_forward_evaluate, walk_forward_windows

__all__ = ["EvaluationSettings", "Evaluator", "StrategyEvaluation", "rank"]

ConfidenceFn = Callable[[list[StrategySpec]], np.ndarray]  # specs -> ml_confidence in [0, 1]
MIN_TEST_BARS = 20


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    """Walk-forward windows: ``n_windows`` test windows of ``test`` bars, each after ``train`` bars
    (defaults: ``test = n_bars // (n_windows + 2)``, ``train = 2 × test``, rolling); the broker
    setup of every backtest; the activation thresholds of the composite score."""

    n_windows: int = 4
    train: int | None = None
    test: int | None = None
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    activate_above: float = 0.65
    deactivate_below: float = 0.50

    def __post_init__(self) -> None:
        if isinstance(self.n_windows, bool) or not isinstance(self.n_windows, int) or self.n_windows < 1:
            raise DiscoveryInputError(f"n_windows must be an integer >= 1, got {self.n_windows!r}")
        for k in ("train", "test"):
            v = getattr(self, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise DiscoveryInputError(f"{k} must be a positive number of bars, got {v!r}")
        for k in ("activate_above", "deactivate_below"):
            v = getattr(self, k)
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                raise DiscoveryInputError(f"{k} must be within [0, 1], got {v!r}")
        if self.deactivate_below > self.activate_above:
            raise DiscoveryInputError(f"deactivate_below {self.deactivate_below} must not exceed activate_above "
                                      f"{self.activate_above}")

    def windows(self, n_bars: int, source: str) -> list[Window]:
        test = self.test or n_bars // (self.n_windows + 2)
        train = self.train or 2 * test
        if test < MIN_TEST_BARS:
            raise InsufficientDataError(f"{source}: {n_bars} bars are too few for {self.n_windows} walk-forward test "
                                        f"windows of at least {MIN_TEST_BARS} bars (test={test})")
        try:
            return walk_forward_windows(n_bars, train=train, test=test, min_windows=self.n_windows)[:self.n_windows]
        except InsufficientDataError as e:
            raise InsufficientDataError(f"{source}: {e}") from None


@dataclass(frozen=True, slots=True)
class StrategyEvaluation:
    """One strategy's out-of-sample record and scores.

    ``oos_returns``: per-bar returns on the test windows (all instruments, stitched in order);
    ``sharpe`` annualised; ``max_drawdown`` the deepest of the instruments' (a positive fraction); ``score`` the
    deflated ``backtest_score`` breakdown; ``ml_confidence`` from the evaluation model (None when
    none was asked); ``composite`` = their mean. ``error`` says why a backtest failed (no score)."""

    spec: StrategySpec
    oos_returns: np.ndarray
    per_instrument: dict[str, np.ndarray]
    sharpe: float
    max_drawdown: float
    total_return: float
    n_trades: int
    score: ScoreBreakdown | None
    ml_confidence: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def backtest_score(self) -> float | None:
        return None if self.score is None else self.score.score

    @property
    def composite(self) -> float | None:
        if self.score is None or self.ml_confidence is None:
            return None
        return composite_score(self.ml_confidence, self.score.score)

    def with_ml(self, ml_confidence: float | None) -> StrategyEvaluation:
        return StrategyEvaluation(self.spec, self.oos_returns, self.per_instrument, self.sharpe, self.max_drawdown,
                                  self.total_return, self.n_trades, self.score, ml_confidence, self.error)

    def to_dict(self) -> dict[str, Any]:
        s = self.score
        return {"spec": self.spec.to_dict(), "ml_confidence": self.ml_confidence,
                "backtest_score": self.backtest_score, "composite_score": self.composite,
                "oos_sharpe": self.sharpe, "oos_max_drawdown": self.max_drawdown,
                "oos_return": self.total_return, "n_trades": self.n_trades, "n_oos_bars": len(self.oos_returns),
                "dsr": None if s is None else s.dsr, "psr": None if s is None else s.psr,
                "n_trials": None if s is None else s.n_trials, "error": self.error,
                "notes": [] if s is None else list(s.notes)}


def rank(evaluations: Sequence[StrategyEvaluation]) -> list[StrategyEvaluation]:
    """Best composite first (then backtest score); unscored last; ties in spec-key order, so the
    ranking never depends on the order evaluations arrived in."""
    def key(e: StrategyEvaluation) -> tuple:
        c, b = e.composite, e.backtest_score
        return (c is None, -(c if c is not None else 0.0), b is None, -(b if b is not None else 0.0), e.spec.key)
    return sorted(evaluations, key=key)


@dataclass(frozen=True, slots=True)
class _Dataset:
    name: str
    bars: pd.DataFrame
    windows: list[Window]
    periods_per_year: float

    @property
    def test_rows(self) -> np.ndarray:
        # rows of TaskResult.returns (return j earns bar j + 1) that fall on test bars
        return np.concatenate([np.arange(w.test_start - 1, w.test_end - 1) for w in self.windows])


class Evaluator:
    """Scores strategy specs out of sample on ``data`` (``{name: bars}``; names are instruments)
    with ``executor``. Backtests are cached by spec, so re-scoring with more trials is free."""

    def __init__(self, data: Mapping[str, pd.DataFrame], executor: Executor,
                 settings: EvaluationSettings | None = None):
        if not isinstance(data, Mapping) or not data:
            raise DiscoveryInputError("the evaluator needs at least one dataset ({name: bars})")
        self.settings = settings or EvaluationSettings()
        self.executor = executor
        self.datasets: dict[str, _Dataset] = {}
        for name, bars in data.items():
            if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
                raise DiscoveryInputError(f"{name}: bars must be a DataFrame indexed by time")
            self.datasets[name] = _Dataset(name, bars, self.settings.windows(len(bars), name),
                                           periods_per_year(bars.index))
        self._frames = {name: d.bars for name, d in self.datasets.items()}
        self._cache: dict[str, dict[str, TaskResult]] = {}
        self.n_backtests = 0

    @property
    def periods_per_year(self) -> float:
        # several instruments: their bar counts per year, weighted by out-of-sample bars
        w = np.array([len(d.test_rows) for d in self.datasets.values()], dtype=float)
        p = np.array([d.periods_per_year for d in self.datasets.values()])
        return float((w * p).sum() / w.sum())

    def backtest(self, specs: Sequence[StrategySpec]) -> None:
        """Run (through the executor) every spec not yet backtested, on every dataset."""
        todo = list({s.key: s for s in specs if s.key not in self._cache}.values())
        if not todo:
            return
        tasks = [BacktestTask(s, data=name, broker=self.settings.broker) for s in todo for name in self.datasets]
        results = self.executor.map(tasks, data=self._frames)
        if len(results) != len(tasks):
            raise DiscoveryError(f"the executor returned {len(results)} results for {len(tasks)} tasks")
        self.n_backtests += len(tasks)
        for k, s in enumerate(todo):
            n = len(self.datasets)
            self._cache[s.key] = dict(zip(self.datasets, results[k * n:(k + 1) * n], strict=True))

    def evaluate(self, specs: Sequence[StrategySpec], *, n_trials: int | None = None,
                 trial_sharpes: Sequence[float] | None = None,
                 ml_confidence: ConfidenceFn | Sequence[float | None] | None = None) -> list[StrategyEvaluation]:
        """Evaluate ``specs`` side by side (in their order). ``n_trials`` (default: the number of
        specs) deflates every DSR; ``trial_sharpes`` (per-period) gives the trials' Sharpe spread;
        without either, the specs' own out-of-sample Sharpes are used when there are at least two."""
        specs = list(specs)
        if not specs:
            raise DiscoveryInputError("no strategies to evaluate")
        self.backtest(specs)
        raw = [self._oos(s) for s in specs]
        n = n_trials if n_trials is not None else len(specs)
        if trial_sharpes is None and n_trials is None:
            sh = [x[2] for x in raw if x[3] is None and math.isfinite(x[2])]
            trial_sharpes = sh if len(sh) >= 2 else None
        if trial_sharpes is not None and len(trial_sharpes) > n:
            n = len(trial_sharpes)
        conf = self._confidence(specs, ml_confidence)
        variance = _trial_variance(trial_sharpes, raw)
        out = []
        for s, (returns, per_inst, _sr, err, n_trades), c in zip(specs, raw, conf, strict=True):
            if err is not None:
                out.append(StrategyEvaluation(s, returns, per_inst, math.nan, math.nan, math.nan, n_trades, None, c, err))
                continue
            # stitching instruments end to end would compound unrelated markets: the drawdown
            # judged is the deepest of any one instrument's test windows
            dd = max(max_drawdown(r) for r in per_inst.values())
            score = backtest_score(returns, n_trials=n, sharpe_variance=variance, max_drawdown=dd,
                                   periods_per_year=self.periods_per_year)
            total = float(np.prod(1.0 + returns) - 1.0)
            out.append(StrategyEvaluation(s, returns, per_inst, score.sharpe_annualised, score.max_drawdown, total,
                                          n_trades, score, c))
        return out

    def _confidence(self, specs: list[StrategySpec], ml: Any) -> list[float | None]:
        if ml is None:
            return [None] * len(specs)
        values = list(ml(specs)) if callable(ml) else list(ml)
        if len(values) != len(specs):
            raise DiscoveryInputError(f"{len(values)} ml_confidence values for {len(specs)} strategies")
        out = []
        for s, v in zip(specs, values, strict=True):
            if v is not None and not 0.0 <= float(v) <= 1.0:
                raise DiscoveryInputError(f"ml_confidence {v} of {s.name} {s.params} is not within [0, 1]")
            out.append(None if v is None else float(v))
        return out

    def _oos(self, spec: StrategySpec) -> tuple[np.ndarray, dict[str, np.ndarray], float, str | None, int]:
        per_inst: dict[str, np.ndarray] = {}
        errors, trades = [], 0
        for name, d in self.datasets.items():
            res = self._cache[spec.key][name]
            if not res.ok:
                errors.append(f"{name}: {res.error}")
                continue
            per_inst[name] = res.returns[d.test_rows]
            trades += res.n_trades
        if errors:
            return np.empty(0), per_inst, math.nan, "; ".join(errors), trades
        r = np.concatenate(list(per_inst.values()))
        sr = return_stats(r).sharpe
        return r, per_inst, sr, None, trades

    def oos_matrix(self, specs: Sequence[StrategySpec]) -> pd.DataFrame:
        """Test-window returns of ``specs`` side by side (rows: stitched test bars; columns: spec
        keys); failed backtests are left out."""
        self.backtest(specs)
        cols = {}
        for s in _unique(specs):
            r, _, _, err, _ = self._oos(s)
            if err is None:
                cols[s.key] = r
        return pd.DataFrame(cols)

    def pbo(self, specs: Sequence[StrategySpec], n_blocks: int = 8) -> float | None:
        """CSCV Probability of Backtest Overfitting over the specs' test-window returns; None when
        there are fewer than 2 specs or too few bars for the blocks."""
        m = self.oos_matrix(specs)
        if m.shape[1] < 2 or len(m) < 2 * n_blocks:
            return None
        return probability_of_backtest_overfitting(m, n_blocks=n_blocks).pbo

    def walk_forward_selection(self, specs: Sequence[StrategySpec], instrument: str | None = None) -> Any:
        """Choose among ``specs`` on each train window (per-bar Sharpe), score the choice on the
        following test window: :func:`walk_forward_evaluate` over the cached full-length returns.
        Returns its ``WalkForwardResult`` (``.score(n_trials=...)`` for the DSR)."""
        specs = _unique(specs)
        name = instrument or next(iter(self.datasets))
        d = self.datasets[name]
        self.backtest(specs)
        failed = [s for s in specs if not self._cache[s.key][name].ok]
        if failed:
            raise DiscoveryError(f"{name}: {len(failed)} candidate backtest(s) failed, e.g. "
                                 f"{self._cache[failed[0].key][name].error}")
        full = {s.key: np.concatenate(([0.0], self._cache[s.key][name].returns)) for s in specs}
        pos = pd.Series(np.arange(len(d.bars)), index=d.bars.index)

        def returns_of(spec: StrategySpec, df: pd.DataFrame) -> np.ndarray:
            return full[spec.key][pos.loc[df.index].to_numpy()]

        w = d.windows
        return walk_forward_evaluate(specs, d.bars.iloc[:w[-1].test_end], returns_of,
                                     train=w[0].train_end - w[0].train_start, test=w[0].test_end - w[0].test_start)


def _trial_variance(trial_sharpes: Sequence[float] | None, raw: list[tuple]) -> float | None:
    """The spread of the trials' Sharpe estimates for the DSR, never below the null's 1/(T - 1).

    Candidates of one family on one market are strongly correlated (every trend follower gains
    from the same lucky trend), so their sample spread understates how far the best of N
    *independent* tries would reach by chance, and the deflation would be too mild. Lo (2002):
    a zero-Sharpe estimate from T returns varies by about 1/(T - 1); that is the floor.
    """
    lengths = [len(x[0]) for x in raw if x[3] is None and len(x[0]) > 1]
    if not lengths:
        return None
    floor = 1.0 / (min(lengths) - 1)
    if trial_sharpes is None:
        return floor
    s = np.asarray(list(trial_sharpes), dtype=float)
    if len(s) < 2 or not np.isfinite(s).all():
        raise DiscoveryInputError(f"trial_sharpes must be at least 2 finite per-period Sharpe ratios, got {len(s)}")
    return max(float(s.var(ddof=1)), floor)


def _unique(specs: Sequence[StrategySpec]) -> list[StrategySpec]:
    return list({s.key: s for s in specs}.values())
