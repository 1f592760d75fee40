"""Scores for discovered strategies that luck cannot game.

Automated discovery runs thousands of backtests, and the best of many noise strategies always
looks good. The scores here therefore judge *out-of-sample* returns and discount them for the
number of trials that were tried:

* Sharpe ratio of per-period returns, mean / sample standard deviation (ddof=1), risk-free rate 0.
* Probabilistic Sharpe Ratio, Bailey & López de Prado (2012), "The Sharpe Ratio Efficient
  Frontier", Journal of Risk 15(2): the probability that the true Sharpe exceeds ``SR*``::

      PSR(SR*) = Φ( (SR − SR*)·sqrt(n − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4·SR²) )

  with SR the per-period (not annualised) Sharpe of n returns, γ3 their skewness and γ4 their
  (non-excess) kurtosis, both population moment ratios (scipy's ``skew`` and
  ``kurtosis(fisher=False)`` with their default ``bias=True``).
* Expected maximum Sharpe of N independent trials whose true Sharpe is 0, Bailey & López de Prado
  (2014), "The Deflated Sharpe Ratio", Journal of Portfolio Management 40(5), eq. (2)::

      E[max SR] ≈ sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))

  γ the Euler–Mascheroni constant, V the variance of the trials' Sharpe estimates.
* Deflated Sharpe Ratio: ``DSR = PSR(SR* = E[max SR])``.

All Sharpe ratios inside these formulas are per period; annualising is only for display and for
the performance component of :func:`backtest_score`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from alphaloop.discovery.errors import DiscoveryInputError, InsufficientDataError

EULER_GAMMA = 0.5772156649015329
STATUSES = ("candidate", "active", "inactive")  # the store's strategy statuses
_NORMAL = NormalDist()

ReturnsLike = Sequence[float] | np.ndarray  # a pandas Series works too


def _returns(returns: Any, name: str = "returns") -> np.ndarray:
    a = np.asarray(returns, dtype=float)
    if a.ndim != 1:
        raise DiscoveryInputError(f"{name} must be one-dimensional, got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise DiscoveryInputError(f"{name} has a non-finite value {a[bad[0]]} at position {bad[0]}")
    return a


def _trials(n_trials: Any) -> int:
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise DiscoveryInputError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    return int(n_trials)


@dataclass(frozen=True, slots=True)
class ReturnStats:
    """Moments of a return series: ``std`` is the sample deviation (ddof=1), ``sharpe`` per period,
    ``skewness`` and ``kurtosis`` (non-excess, 3 for a normal) population moment ratios."""

    n_obs: int
    mean: float
    std: float
    sharpe: float
    skewness: float
    kurtosis: float


def return_stats(returns: ReturnsLike) -> ReturnStats:
    """Mean, deviation, per-period Sharpe, skewness and kurtosis; NaN Sharpe for constant returns."""
    a = _returns(returns)
    n = len(a)
    if n < 2:
        raise InsufficientDataError(f"need at least 2 returns for a Sharpe ratio, got {n}")
    mean = float(a.mean())
    if np.ptp(a) == 0:  # exactly constant: no risk measured, so no Sharpe (not a huge one from rounding)
        return ReturnStats(n, mean, 0.0, math.nan, math.nan, math.nan)
    d = a - mean
    scale = float(np.abs(d).max())
    z = d / scale  # moments of d / scale: no under- or overflow for tiny or huge returns
    m2, m3, m4 = float(np.mean(z**2)), float(np.mean(z**3)), float(np.mean(z**4))
    std = scale * math.sqrt(m2 * n / (n - 1))
    return ReturnStats(n, mean, std, mean / std, m3 / m2**1.5, m4 / m2**2)


def sharpe_ratio(returns: ReturnsLike, *, periods_per_year: float | None = None) -> float:
    """Mean / sample deviation of per-period returns (risk-free 0), times ``sqrt(periods_per_year)``
    when given; NaN for constant returns."""
    sr = return_stats(returns).sharpe
    if periods_per_year is None:
        return sr
    if not periods_per_year > 0:
        raise DiscoveryInputError(f"periods_per_year must be > 0, got {periods_per_year}")
    return sr * math.sqrt(periods_per_year)


def psr_from_stats(sharpe: float, n_obs: int, *, skewness: float = 0.0, kurtosis: float = 3.0,
                   sharpe_benchmark: float = 0.0) -> float:
    """PSR from summary statistics (per-period ``sharpe`` and ``sharpe_benchmark``; see module doc).

    It rises with ``sharpe`` while skewness·sharpe < 2 (the derivative's sign is 1 − γ3·SR/2)
    and, for SR > SR*, with ``n_obs``."""
    if isinstance(n_obs, bool) or not isinstance(n_obs, int | np.integer) or n_obs < 2:
        raise InsufficientDataError(f"PSR needs n_obs >= 2 returns, got {n_obs!r}")
    if any(math.isnan(x) for x in (sharpe, skewness, kurtosis, sharpe_benchmark)):
        return math.nan
    var = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    diff = sharpe - sharpe_benchmark
    if var <= 0.0:  # only in degenerate (two-point) distributions: the estimate has no spread
        return 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
    return _NORMAL.cdf(diff * math.sqrt(n_obs - 1) / math.sqrt(var))


def probabilistic_sharpe_ratio(returns: ReturnsLike, sharpe_benchmark: float = 0.0) -> float:
    """P(true Sharpe > ``sharpe_benchmark``) given these returns; the benchmark is per period."""
    s = return_stats(returns)
    return psr_from_stats(s.sharpe, s.n_obs, skewness=s.skewness, kurtosis=s.kurtosis,
                          sharpe_benchmark=sharpe_benchmark)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """E[max SR] of ``n_trials`` independent zero-Sharpe trials whose estimates vary by
    ``sharpe_variance`` (per-period units); 0 for a single trial, which has nothing to select."""
    n = _trials(n_trials)
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0):
        raise DiscoveryInputError(f"sharpe_variance must be finite and >= 0, got {sharpe_variance}")
    if n == 1:
        return 0.0
    # Φ⁻¹(1 − p) = −Φ⁻¹(p): exact even when 1 − 1/N rounds to 1 for huge N
    z = (1.0 - EULER_GAMMA) * -_NORMAL.inv_cdf(1.0 / n) + EULER_GAMMA * -_NORMAL.inv_cdf(1.0 / (n * math.e))
    return math.sqrt(sharpe_variance) * z


def _sharpe_variance(n_trials: int, n_obs: int, trial_sharpes: ReturnsLike | None,
                     sharpe_variance: float | None) -> float:
    if trial_sharpes is not None and sharpe_variance is not None:
        raise DiscoveryInputError("give trial_sharpes or sharpe_variance, not both")
    if trial_sharpes is not None:
        s = _returns(trial_sharpes, "trial_sharpes")
        if len(s) < 2:
            raise InsufficientDataError(f"need at least 2 trial Sharpe ratios for their variance, got {len(s)}")
        if len(s) > n_trials:
            raise DiscoveryInputError(f"{len(s)} trial Sharpe ratios but n_trials={n_trials}: "
                                      "n_trials counts every trial tried, so it cannot be smaller")
        return float(s.var(ddof=1))
    if sharpe_variance is not None:
        return float(sharpe_variance)
    # Under the null (true SR = 0) a Sharpe estimated from n returns has variance ≈ 1/(n − 1)
    # (Lo 2002, "The Statistics of Sharpe Ratios"): the least spread the trials can have.
    return 1.0 / (n_obs - 1)


def dsr_from_stats(sharpe: float, n_obs: int, *, n_trials: int, sharpe_variance: float,
                   skewness: float = 0.0, kurtosis: float = 3.0) -> float:
    """DSR from summary statistics (per-period Sharpe and variance of the trials' Sharpes)."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return psr_from_stats(sharpe, n_obs, skewness=skewness, kurtosis=kurtosis, sharpe_benchmark=sr0)


def deflated_sharpe_ratio(returns: ReturnsLike, *, n_trials: int, trial_sharpes: ReturnsLike | None = None,
                          sharpe_variance: float | None = None) -> float:
    """P(true Sharpe > 0) after selecting these returns as the best of ``n_trials``.

    The trials' Sharpe variance V comes from ``trial_sharpes`` (per-period Sharpes of the trials;
    ``n_trials`` may exceed their count), or ``sharpe_variance``, or else the null's 1/(n − 1).
    """
    s = return_stats(returns)
    v = _sharpe_variance(_trials(n_trials), s.n_obs, trial_sharpes, sharpe_variance)
    return dsr_from_stats(s.sharpe, s.n_obs, n_trials=n_trials, sharpe_variance=v,
                          skewness=s.skewness, kurtosis=s.kurtosis)


def max_drawdown(returns: ReturnsLike) -> float:
    """Deepest fall of the compounded equity below its running peak, as a positive fraction
    (0.25 = 25 % below the peak; 1.0 = ruin). The equity starts at 1 before the first return."""
    return _drawdown(_returns(returns))


def _drawdown(a: np.ndarray) -> float:
    equity = np.cumprod(np.concatenate(([1.0], 1.0 + a)))
    if (equity <= 0).any():
        return 1.0
    peak = np.maximum.accumulate(equity)
    return float((1.0 - equity / peak).max())


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """:func:`backtest_score`'s result: ``score = sqrt(performance · drawdown) · significance``.

    Sharpe values are per period except ``sharpe_annualised``; ``max_drawdown`` is a positive
    fraction; ``psr`` is PSR(0) (no deflation), ``dsr`` = ``significance``; ``notes`` say what held
    the score down.
    """

    score: float
    performance: float
    drawdown: float
    significance: float
    sharpe: float
    sharpe_annualised: float
    max_drawdown: float
    psr: float
    dsr: float
    expected_max_sharpe: float
    sharpe_variance: float
    n_trials: int
    n_obs: int
    skewness: float
    kurtosis: float
    periods_per_year: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def backtest_score(oos_returns: ReturnsLike, *, n_trials: int, trial_sharpes: ReturnsLike | None = None,
                   sharpe_variance: float | None = None, max_drawdown: float | None = None,
                   periods_per_year: float = 252.0, sharpe_scale: float = 1.0,
                   drawdown_limit: float = 0.5) -> ScoreBreakdown:
    """Score out-of-sample per-period returns in [0, 1]::

        performance  = 1 − exp(−max(SR_ann, 0) / sharpe_scale)    # 0 for SR ≤ 0; 0.63 at SR = scale
        drawdown     = max(0, 1 − maxDD / drawdown_limit)          # 0 at or beyond the limit
        significance = DSR(oos_returns; n_trials, V)
        score        = sqrt(performance · drawdown) · significance

    The geometric mean of the two quality terms lets neither a loss nor a catastrophic drawdown
    be bought back by the other; multiplying by the DSR (the probability that the Sharpe is real
    after ``n_trials`` tries) means a lucky strategy (DSR near 0) scores near 0 however good its
    numbers look. ``max_drawdown`` is a fraction (either sign; ``max_drawdown_pct / 100`` from the
    backtest metrics), computed from the returns when omitted. ``periods_per_year`` annualises
    the Sharpe for ``performance`` (252 for daily bars, as the backtest metrics do).
    """
    if not periods_per_year > 0:
        raise DiscoveryInputError(f"periods_per_year must be > 0, got {periods_per_year}")
    if not sharpe_scale > 0:
        raise DiscoveryInputError(f"sharpe_scale must be > 0, got {sharpe_scale}")
    if not 0 < drawdown_limit <= 1:
        raise DiscoveryInputError(f"drawdown_limit must be within (0, 1], got {drawdown_limit}")
    n = _trials(n_trials)
    a = _returns(oos_returns, "oos_returns")
    s = return_stats(a)
    if max_drawdown is None:
        dd = _drawdown(a)
    else:
        dd = abs(float(max_drawdown))
        if not dd <= 1.0:
            raise DiscoveryInputError(f"max_drawdown {max_drawdown} is not a fraction within [-1, 1] "
                                      "(a percentage? divide max_drawdown_pct by 100)")
    v = _sharpe_variance(n, s.n_obs, trial_sharpes, sharpe_variance)
    sr0 = expected_max_sharpe(n, v)
    notes = []
    if math.isnan(s.sharpe):
        sr_ann, perf, psr, dsr = math.nan, 0.0, math.nan, math.nan
        notes.append("constant returns: no Sharpe ratio")
    else:
        sr_ann = s.sharpe * math.sqrt(periods_per_year)
        perf = 1.0 - math.exp(-max(sr_ann, 0.0) / sharpe_scale)
        psr = psr_from_stats(s.sharpe, s.n_obs, skewness=s.skewness, kurtosis=s.kurtosis)
        dsr = psr_from_stats(s.sharpe, s.n_obs, skewness=s.skewness, kurtosis=s.kurtosis, sharpe_benchmark=sr0)
        if sr_ann <= 0:
            notes.append(f"non-positive out-of-sample Sharpe {sr_ann:.3g}")
    dd_score = max(0.0, 1.0 - dd / drawdown_limit)
    if dd_score == 0.0:
        notes.append(f"max drawdown {dd:.1%} at or beyond the limit {drawdown_limit:.1%}")
    sig = 0.0 if math.isnan(dsr) else dsr
    if sig < 0.95 and not math.isnan(s.sharpe):
        notes.append(f"not significant after {n} trial(s): DSR {sig:.3f} < 0.95")
    score = math.sqrt(perf * dd_score) * sig
    return ScoreBreakdown(score=min(max(score, 0.0), 1.0), performance=perf, drawdown=dd_score, significance=sig,
                          sharpe=s.sharpe, sharpe_annualised=sr_ann, max_drawdown=dd, psr=psr, dsr=dsr,
                          expected_max_sharpe=sr0, sharpe_variance=v, n_trials=n, n_obs=s.n_obs,
                          skewness=s.skewness, kurtosis=s.kurtosis, periods_per_year=float(periods_per_year),
                          notes=tuple(notes))


def _unit(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DiscoveryInputError(f"{name} must be a number within [0, 1], got {value!r}") from None
    if not 0.0 <= x <= 1.0:  # NaN fails this too
        raise DiscoveryInputError(f"{name} must be within [0, 1], got {x}")
    return x


def composite_score(ml_confidence: float, backtest_score: float | ScoreBreakdown) -> float:
    """``(ml_confidence + backtest_score) / 2``; both must lie in [0, 1]."""
    if isinstance(backtest_score, ScoreBreakdown):
        backtest_score = backtest_score.score
    return (_unit(ml_confidence, "ml_confidence") + _unit(backtest_score, "backtest_score")) / 2.0


@dataclass(frozen=True, slots=True)
class ActivationDecision:
    status: str
    previous: str
    changed: bool
    reason: str


def activation_decision(composite: float, current_status: str = "candidate", *, activate_above: float = 0.65,
                        deactivate_below: float = 0.50) -> ActivationDecision:
    """Hysteresis between two thresholds, so a score hovering near one does not flip a strategy
    on and off: a candidate or inactive strategy becomes active when ``composite >= activate_above``;
    an active one becomes inactive when ``composite < deactivate_below``; otherwise it stays."""
    c = _unit(composite, "composite")
    hi, lo = _unit(activate_above, "activate_above"), _unit(deactivate_below, "deactivate_below")
    if lo > hi:
        raise DiscoveryInputError(f"deactivate_below {lo} must not exceed activate_above {hi}")
    if current_status not in STATUSES:
        raise DiscoveryInputError(f"unknown status {current_status!r}; expected one of {', '.join(STATUSES)}")
    if current_status == "active":
        if c < lo:
            return ActivationDecision("inactive", "active", True,
                                      f"composite {c:.3f} < deactivate_below {lo:.3f}: deactivated")
        return ActivationDecision("active", "active", False,
                                  f"composite {c:.3f} >= deactivate_below {lo:.3f}: stays active")
    if c >= hi:
        return ActivationDecision("active", current_status, True,
                                  f"composite {c:.3f} >= activate_above {hi:.3f}: activated")
    return ActivationDecision(current_status, current_status, False,
                              f"composite {c:.3f} < activate_above {hi:.3f}: stays {current_status}")
