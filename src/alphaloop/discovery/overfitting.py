"""Probability of Backtest Overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado & Zhu (2015), "The Probability of Backtest Overfitting",
Journal of Computational Finance 20(4). Given a T×N matrix of per-period returns of N trials
(one column per parameter set tried), cut the T rows into S equal-ish blocks in time order; for
every choice of S/2 blocks as in-sample (the rest out-of-sample):

1. pick the trial n* with the best in-sample performance;
2. find its relative rank out-of-sample, ω = rank / (N + 1) (rank 1 = worst, ties averaged);
3. record the logit λ = ln(ω / (1 − ω)).

PBO = the fraction of logits ≤ 0: how often the in-sample winner does no better than the median
trial out of sample. Near 0: selection found something real; near 0.5 or above: selection
picked noise. Performance is the per-period Sharpe ratio unless a ``metric`` is given.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError

Metric = Callable[[np.ndarray], np.ndarray]  # (rows × N returns) -> N performances, higher better
_CHUNK_CELLS = 4_000_000  # combinations × trials evaluated at once: bounds memory


@dataclass(frozen=True, slots=True)
class Degradation:
    """How the chosen trial's performance fell from in-sample to out-of-sample over the splits:
    the least-squares line ``oos = intercept + slope · is``, its R², the means, and the share of
    splits where the chosen trial lost out of sample (performance < 0)."""

    slope: float
    intercept: float
    r_squared: float
    mean_is: float
    mean_oos: float
    prob_oos_loss: float


@dataclass(frozen=True, slots=True)
class PBOResult:
    """``logits``, ``chosen``, ``is_performance``, ``oos_performance`` and ``oos_rank`` (relative,
    in (0, 1)) have one entry per split (combination). Performance is NaN where undefined (a
    constant return block); such trials rank last."""

    pbo: float
    logits: np.ndarray
    chosen: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    oos_rank: np.ndarray
    degradation: Degradation
    n_blocks: int
    n_combinations: int
    n_trials: int
    n_obs: int
    trials: tuple[Any, ...]

    def logit_quantiles(self, qs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[float, float]:
        return {q: float(np.quantile(self.logits, q)) for q in qs}


def _matrix(performance: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    if isinstance(performance, pd.DataFrame):
        names: tuple[Any, ...] = tuple(performance.columns)
        m = performance.to_numpy(dtype=float)
    else:
        m = np.asarray(performance, dtype=float)
        names = tuple(range(m.shape[1])) if m.ndim == 2 else ()
    if m.ndim != 2:
        raise DiscoveryInputError(f"performance must be a T×N matrix (periods × trials), got shape {m.shape}")
    bad = np.argwhere(~np.isfinite(m))
    if len(bad):
        t, n = bad[0]
        raise DiscoveryInputError(f"performance has a non-finite value {m[t, n]} at row {t}, trial {names[n]!r}")
    return m, names


def _sharpe_from_sums(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, shift: np.ndarray,
                      var_floor: np.ndarray) -> np.ndarray:
    # Moments of centred data (x − shift) keep the variance free of cancellation; a variance at
    # rounding level (constant returns) gives NaN rather than a huge Sharpe.
    n = n[:, None]
    var = (s2 - s1**2 / n) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = (s1 / n + shift) / np.sqrt(var)
    return np.where(var > var_floor, sr, np.nan)


def _relative_rank(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Average rank (1 = lowest) of ``values[c, chosen[c]]`` within row c, divided by N + 1."""
    v = np.where(np.isnan(values), -np.inf, values)
    x = v[np.arange(len(v)), chosen][:, None]
    rank = (v < x).sum(axis=1) + ((v == x).sum(axis=1) + 1) / 2.0
    return rank / (v.shape[1] + 1)


def probability_of_backtest_overfitting(performance: Any, *, n_blocks: int = 16,
                                        metric: Metric | None = None) -> PBOResult:
    """CSCV PBO of the T×N matrix ``performance`` (per-period returns; DataFrame columns name the
    trials). ``n_blocks`` (S, even) blocks give C(S, S/2) splits (12,870 for S = 16). ``metric``
    maps a (rows × N) slice to N performances; default: per-period Sharpe, computed from block
    sums so that every split costs a matrix product rather than a pass over the data."""
    m, names = _matrix(performance)
    t, n = m.shape
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int | np.integer) or n_blocks < 2 or n_blocks % 2:
        raise DiscoveryInputError(f"n_blocks must be an even integer >= 2, got {n_blocks!r}")
    if n < 2:
        raise InsufficientDataError(f"PBO needs at least 2 trials to choose among, got {n}")
    if t < 2 * n_blocks:
        raise InsufficientDataError(f"{t} periods are too few for {n_blocks} blocks of at least 2 periods "
                                    f"each: need at least {2 * n_blocks}")
    # Blocks keep time order and differ in length by at most one row (no data dropped).
    blocks = np.array_split(np.arange(t), n_blocks)
    combos = np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)))
    n_comb = len(combos)
    in_sample = np.zeros((n_comb, n_blocks), dtype=bool)
    in_sample[np.arange(n_comb)[:, None], combos] = True

    is_perf = np.empty((n_comb, n))
    oos_perf = np.empty((n_comb, n))
    if metric is None:
        shift = m.mean(axis=0)
        c = m - shift
        counts = np.array([len(b) for b in blocks], dtype=float)
        s1 = np.stack([c[b].sum(axis=0) for b in blocks])
        s2 = np.stack([(c[b] ** 2).sum(axis=0) for b in blocks])
        tot1, tot2 = s1.sum(axis=0), s2.sum(axis=0)
        var_floor = (1e-10 * np.abs(m).max(axis=0)) ** 2
        chunk = max(1, _CHUNK_CELLS // n)
        for lo in range(0, n_comb, chunk):
            a = in_sample[lo:lo + chunk].astype(float)
            n_is, sum_is, sq_is = a @ counts, a @ s1, a @ s2
            is_perf[lo:lo + chunk] = _sharpe_from_sums(n_is, sum_is, sq_is, shift, var_floor)
            oos_perf[lo:lo + chunk] = _sharpe_from_sums(t - n_is, tot1 - sum_is, tot2 - sq_is, shift,
                                                          var_floor)
    else:
        for k, mask in enumerate(in_sample):
            rows_is = np.concatenate([blocks[j] for j in np.flatnonzero(mask)])
            rows_oos = np.concatenate([blocks[j] for j in np.flatnonzero(~mask)])
            for target, rows in ((is_perf, rows_is), (oos_perf, rows_oos)):
                out = np.asarray(metric(m[rows]), dtype=float)
                if out.shape != (n,):
                    raise DiscoveryInputError(f"metric returned shape {out.shape}, expected ({n},)")
                target[k] = out

    chosen = np.argmax(np.where(np.isnan(is_perf), -np.inf, is_perf), axis=1)  # first of equals
    omega = _relative_rank(oos_perf, chosen)
    logits = np.log(omega / (1.0 - omega))
    rows = np.arange(n_comb)
    chosen_is, chosen_oos = is_perf[rows, chosen], oos_perf[rows, chosen]
    return PBOResult(pbo=float(np.mean(logits <= 0)), logits=logits, chosen=chosen,
                     is_performance=chosen_is, oos_performance=chosen_oos, oos_rank=omega,
                     degradation=_degradation(chosen_is, chosen_oos), n_blocks=int(n_blocks),
                     n_combinations=n_comb, n_trials=n, n_obs=t, trials=names)


def _degradation(is_p: np.ndarray, oos_p: np.ndarray) -> Degradation:
    ok = np.isfinite(is_p) & np.isfinite(oos_p)
    x, y = is_p[ok], oos_p[ok]
    if len(x) == 0:
        return Degradation(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    slope = intercept = r2 = math.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx > 0:  # ordinary least squares in closed form
        slope = sxy / sxx
        intercept = float(y.mean()) - slope * float(x.mean())
        r2 = sxy * sxy / (sxx * syy) if syy > 0 else math.nan
    return Degradation(slope, intercept, r2, float(x.mean()), float(y.mean()), float(np.mean(y < 0)))
