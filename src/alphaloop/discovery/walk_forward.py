"""Walk-forward evaluation: choose on the past, score on what followed.

Each window picks the best candidate on its train bars (in-sample) and records how that choice
did on the test bars right after (out-of-sample); the stitched test returns are the only
returns worth scoring, because no choice ever saw them (Pardo, "The Evaluation and Optimization
of Trading Strategies", 2nd ed., 2008, ch. 11; López de Prado, "Advances in Financial Machine
Learning", 2018, ch. 12).

The evaluation function is injected, ``evaluate_fn(params, df_slice)``, and returns per-bar
returns aligned with ``df_slice`` or a ``BacktestResult`` (alphaloop's ``run_backtest``), so
any backtester can be walked forward. It only ever receives bars up to the end of the window it
is evaluating: future data cannot leak into a choice.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.results import BacktestResult
from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.scoring import ScoreBreakdown, backtest_score

EvaluateFn = Callable[[Any, pd.DataFrame], Any]  # -> per-bar returns (Series/array) or BacktestResult
Objective = Callable[[np.ndarray], float]


@dataclass(frozen=True, slots=True)
class Window:
    """Bar positions, half-open: train ``[train_start, train_end)``, test ``[test_start, test_end)``."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int

    @property
    def train(self) -> slice:
        return slice(self.train_start, self.train_end)

    @property
    def test(self) -> slice:
        return slice(self.test_start, self.test_end)


def _size(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise DiscoveryInputError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise DiscoveryInputError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise DiscoveryInputError(f"{name} must be >= {minimum}, got {v}")
    return v


def walk_forward_windows(n_bars: int, *, train: int, test: int, step: int | None = None,
                         anchored: bool = False, min_windows: int = 1) -> list[Window]:
    """Time-ordered windows over ``n_bars`` bars; each test window starts where its train ends.

    Windows roll forward by ``step`` bars (default ``test``, which makes the test windows
    contiguous; a larger step leaves gaps, a smaller one would overlap them and is refused).
    Rolling windows keep ``train`` bars; ``anchored`` ones all start at bar 0 and grow. Only whole
    test windows are made: trailing bars too few for one are left out.
    """
    n_bars = _size(n_bars, "n_bars", 0)
    train, test = _size(train, "train", 1), _size(test, "test", 1)
    step = test if step is None else _size(step, "step", 1)
    min_windows = _size(min_windows, "min_windows", 1)
    if step < test:
        raise DiscoveryInputError(f"step {step} < test {test} would make test windows overlap")
    windows = []
    offset = 0
    while offset + train + test <= n_bars:
        end = offset + train
        windows.append(Window(0 if anchored else offset, end, end, end + test))
        offset += step
    if len(windows) < min_windows:
        need = train + test + (min_windows - 1) * step
        raise InsufficientDataError(
            f"{n_bars} bars are too few for {min_windows} walk-forward window(s) of train={train} + "
            f"test={test} bars (step {step}): need at least {need} bars")
    return windows


def sharpe_objective(returns: np.ndarray) -> float:
    """Per-bar Sharpe (mean / sample deviation); 0 for a flat candidate, NaN for fewer than 2 bars."""
    if len(returns) < 2:
        return math.nan
    sd = float(returns.std(ddof=1))
    return float(returns.mean()) / sd if sd > 0 else 0.0


@dataclass(frozen=True, slots=True)
class WindowChoice:
    """One window's choice: the candidate (``index`` into the candidates, and its ``params``) with
    the best train objective, the objective of every candidate on train, and how the chosen one
    did on test."""

    window: Window
    index: int
    params: Any
    train_scores: tuple[float, ...]
    train_objective: float
    test_objective: float
    test_return: float  # compounded over the test window


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """``oos_returns``: per-bar returns of the chosen candidates on test bars only, indexed by the
    data's index; ``oos_equity``: their compounded growth of 1."""

    windows: list[Window]
    choices: list[WindowChoice]
    oos_returns: pd.Series
    oos_equity: pd.Series
    n_candidates: int

    @property
    def mean_train_objective(self) -> float:
        return float(np.nanmean([c.train_objective for c in self.choices]))

    @property
    def mean_test_objective(self) -> float:
        return float(np.nanmean([c.test_objective for c in self.choices]))

    @property
    def degradation(self) -> float:
        """Mean test objective minus mean train objective of the chosen: how much of the in-sample
        edge was selection luck (negative is the usual case)."""
        return self.mean_test_objective - self.mean_train_objective

    def score(self, **kwargs: Any) -> ScoreBreakdown:
        """:func:`backtest_score` of the out-of-sample returns, deflated for ``n_candidates`` trials
        unless ``n_trials`` says otherwise."""
        kwargs.setdefault("n_trials", self.n_candidates)
        return backtest_score(self.oos_returns.to_numpy(), **kwargs)


def _to_returns(out: Any, df: pd.DataFrame, what: str) -> np.ndarray:
    """Per-bar returns aligned with ``df``: return i is earned over bar i (close i−1 to close i)."""
    if isinstance(out, BacktestResult):
        equity = out.equity["equity"].to_numpy(dtype=float)
        if len(equity) != len(df):
            raise DiscoveryInputError(f"{what}: the backtest's equity has {len(equity)} bars, the slice {len(df)}")
        prev = np.concatenate(([out.initial_cash], equity[:-1]))
        r = np.divide(equity, prev, out=np.zeros_like(equity), where=prev != 0) - 1.0
        r[prev == 0] = 0.0
    else:
        if isinstance(out, pd.Series) and len(out) == len(df) and not out.index.equals(df.index):
            raise DiscoveryInputError(f"{what}: the returns' index does not match the slice's")
        r = np.asarray(out, dtype=float)
        if r.ndim != 1 or len(r) != len(df):
            raise DiscoveryInputError(f"{what}: expected {len(df)} per-bar returns, got shape {r.shape}")
        r = np.where(np.isnan(r), 0.0, r)  # NaN = no position yet (indicator warm-up): flat
    bad = np.flatnonzero(~np.isfinite(r))
    if len(bad):
        raise DiscoveryInputError(f"{what}: non-finite return {r[bad[0]]} at bar {bad[0]} of the slice")
    return r


def _span_returns(evaluate_fn: EvaluateFn, params: Any, data: pd.DataFrame, start: int, end: int,
                  lookback: int, what: str) -> np.ndarray:
    # The slice ends at ``end``: the evaluation never sees a bar after the span it scores. The
    # ``lookback`` bars before ``start`` only warm indicators up; their returns are dropped.
    lo = max(0, start - lookback)
    df = data.iloc[lo:end]
    return _to_returns(evaluate_fn(params, df), df, what)[start - lo:]


def walk_forward_evaluate(candidates: Sequence[Any], data: pd.DataFrame, evaluate_fn: EvaluateFn, *,
                          train: int, test: int, step: int | None = None, anchored: bool = False,
                          lookback: int = 0, objective: Objective | None = None,
                          min_windows: int = 1) -> WalkForwardResult:
    """For each window of :func:`walk_forward_windows`: evaluate every candidate on the train
    bars, choose the one with the highest ``objective`` (per-bar returns -> float, higher better;
    default :func:`sharpe_objective`; NaN ranks last, ties go to the earlier candidate), then
    evaluate the chosen one on the test bars. ``lookback`` bars before each span are passed to
    ``evaluate_fn`` as indicator history, and their returns discarded.
    """
    cands = list(candidates)
    if not cands:
        raise DiscoveryInputError("no candidates to evaluate")
    if not isinstance(data, pd.DataFrame):
        raise DiscoveryInputError(f"data must be a pandas DataFrame of bars, got {type(data).__name__}")
    lookback = _size(lookback, "lookback", 0)
    objective = objective or sharpe_objective
    windows = walk_forward_windows(len(data), train=train, test=test, step=step, anchored=anchored,
                                   min_windows=min_windows)
    choices, pieces = [], []
    for k, w in enumerate(windows):
        scores = []
        for i, params in enumerate(cands):
            r = _span_returns(evaluate_fn, params, data, w.train_start, w.train_end, lookback,
                              f"window {k} train, candidate {i}")
            scores.append(float(objective(r)))
        ranked = np.where(np.isnan(scores), -np.inf, scores)
        best = int(np.argmax(ranked))  # first of equals
        r_test = _span_returns(evaluate_fn, cands[best], data, w.test_start, w.test_end, lookback,
                               f"window {k} test, candidate {best}")
        pieces.append(r_test)
        choices.append(WindowChoice(w, best, cands[best], tuple(scores), scores[best], float(objective(r_test)),
                                    float(np.prod(1.0 + r_test) - 1.0)))
    index = data.index[np.concatenate([np.arange(w.test_start, w.test_end) for w in windows])]
    oos = pd.Series(np.concatenate(pieces), index=index, name="oos_return")
    equity = (1.0 + oos).cumprod().rename("oos_equity")
    return WalkForwardResult(windows, choices, oos, equity, len(cands))
