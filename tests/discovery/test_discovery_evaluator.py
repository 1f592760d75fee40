"""The evaluator: out-of-sample only, DSR deflated for the trials run, ranked; luck is not activated."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop.backtest import run_backtest
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.data import load_bars
from alphaloop.discovery.errors import InsufficientDataError
from alphaloop.discovery.evaluator import EvaluationSettings, Evaluator, rank
from alphaloop.discovery.executors import SerialExecutor
from alphaloop.discovery.scoring import (
    activation_decision,
    composite_score,
    expected_max_sharpe,
    psr_from_stats,
)
from alphaloop.strategy import load_strategy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"
SPECS = [StrategySpec("sma_cross", {"fast": f, "slow": s}) for f in (5, 10, 20) for s in (40, 80)]


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_bars(FIXTURES / "GOOG_daily.csv")


@pytest.fixture(scope="module")
def evaluator(goog) -> Evaluator:
    return Evaluator({"GOOG": goog}, SerialExecutor())


def noise_bars(n: int, seed: int) -> pd.DataFrame:
    """A driftless random walk: no strategy has an edge on it."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                       "low": np.minimum(open_, close) * 0.998, "close": close, "volume": 1000.0},
                      index=pd.date_range("2015-01-01", periods=n, freq="B", tz="UTC", name="time"))
    return load_bars(df)


def test_oos_returns_are_the_test_windows_of_a_direct_backtest(evaluator, goog):
    [ev] = evaluator.evaluate([SPECS[0]])
    equity = run_backtest(load_strategy("sma_cross", SPECS[0].params), goog).equity["equity"].to_numpy()
    bar_returns = np.concatenate(([0.0], equity[1:] / equity[:-1] - 1.0))  # return i is earned over bar i
    windows = evaluator.datasets["GOOG"].windows
    expected = np.concatenate([bar_returns[w.test_start:w.test_end] for w in windows])
    np.testing.assert_allclose(ev.oos_returns, expected, rtol=1e-12, atol=1e-15)
    # never in-sample: the first train window is in no test window
    assert windows[0].train_start == 0 and windows[0].test_start > 0
    assert len(ev.oos_returns) == sum(w.test_end - w.test_start for w in windows)
    assert ev.total_return == pytest.approx(np.prod(1 + expected) - 1)


def test_dsr_is_deflated_for_the_trials_run(evaluator):
    one = evaluator.evaluate([SPECS[1]], n_trials=1)[0].score
    assert one.dsr == pytest.approx(one.psr)  # one trial: nothing to deflate
    sharpes = [0.01, 0.05, 0.03, -0.02]
    many = evaluator.evaluate([SPECS[1]], n_trials=50, trial_sharpes=sharpes)[0].score
    # the trials' spread, floored at the null's 1/(T - 1) (here the spread is the larger)
    v = max(float(np.var(sharpes, ddof=1)), 1.0 / (many.n_obs - 1))
    assert v == float(np.var(sharpes, ddof=1))
    sr0 = expected_max_sharpe(50, v)
    expected = psr_from_stats(many.sharpe, many.n_obs, skewness=many.skewness, kurtosis=many.kurtosis,
                              sharpe_benchmark=sr0)
    assert many.dsr == pytest.approx(expected, rel=1e-12) and many.n_trials == 50
    more = evaluator.evaluate([SPECS[1]], n_trials=500, trial_sharpes=sharpes)[0].score
    assert more.dsr < many.dsr < one.dsr


def test_compare_and_rank(evaluator):
    evs = evaluator.evaluate(SPECS, ml_confidence=[0.5, 0.9, 0.1, 0.7, 0.3, 0.6])
    assert [e.spec for e in evs] == SPECS  # side by side, in the order asked
    for e in evs:
        assert e.composite == pytest.approx((e.ml_confidence + e.backtest_score) / 2)
    ranked = rank(evs)
    comps = [e.composite for e in ranked]
    assert comps == sorted(comps, reverse=True)
    assert rank(list(reversed(evs))) == ranked or [e.spec for e in rank(list(reversed(evs)))] == [
        e.spec for e in ranked]


def test_walk_forward_selection_chooses_on_train_only(evaluator, goog):
    wf = evaluator.walk_forward_selection(SPECS)
    bar_returns = {}
    for s in SPECS:
        eq = run_backtest(load_strategy("sma_cross", s.params), goog).equity["equity"].to_numpy()
        bar_returns[s.key] = np.concatenate(([0.0], eq[1:] / eq[:-1] - 1.0))
    for choice in wf.choices:
        w = choice.window
        train_sharpes = []
        for s in SPECS:
            r = bar_returns[s.key][w.train_start:w.train_end]
            train_sharpes.append(r.mean() / r.std(ddof=1))
        assert choice.index == int(np.argmax(train_sharpes))
        np.testing.assert_allclose(wf.oos_returns.loc[goog.index[w.test_start:w.test_end]].to_numpy(),
                                   bar_returns[SPECS[choice.index].key][w.test_start:w.test_end], rtol=1e-9, atol=1e-15)


def test_pbo_of_candidates(evaluator):
    pbo = evaluator.pbo(SPECS)
    assert 0.0 <= pbo <= 1.0
    assert evaluator.pbo(SPECS[:1]) is None


def test_data_too_short_for_the_windows(goog):
    with pytest.raises(InsufficientDataError, match=r"GOOG: 100 bars are too few for 4 walk-forward test windows"):
        Evaluator({"GOOG": goog.iloc[:100]}, SerialExecutor())
    with pytest.raises(InsufficientDataError, match="GOOG: 2148 bars are too few for 4 walk-forward window"):
        Evaluator({"GOOG": goog}, SerialExecutor(), EvaluationSettings(train=1500, test=200))


def test_a_failing_strategy_is_reported_not_scored(goog, tmp_path):
    path = tmp_path / "boom.py"
    path.write_text(textwrap.dedent("""
        from alphaloop.strategy import Strategy

        class Boom(Strategy):
            def on_bar(self, ctx):
                if ctx.i == 10:
                    raise ValueError("boom at bar 10")
    """))
    ev = Evaluator({"GOOG": goog}, SerialExecutor())
    [bad, good] = ev.evaluate([StrategySpec(f"{path}:Boom"), SPECS[0]])
    assert not bad.ok and "boom at bar 10" in bad.error and bad.score is None and bad.composite is None
    assert good.ok and good.score is not None


def test_the_luckiest_of_many_on_pure_noise_is_not_activated():
    """On 20 independent driftless random walks, the best of 90 SMA crossovers is never activated, even
    with an evaluation model that predicts its undeflated score exactly; without the deflation, a good
    share of them would be (so the check has teeth)."""
    specs = [StrategySpec("sma_cross", {"fast": f, "slow": s}) for f in range(2, 30, 3) for s in range(31, 200, 20)]
    lucky_looking = 0
    for seed in range(10, 30):
        ev = Evaluator({"NOISE": noise_bars(1500, seed=seed)}, SerialExecutor())
        undeflated = ev.evaluate(specs, n_trials=1)
        lucky = max(undeflated, key=lambda e: e.sharpe)
        naive = lucky.score.score  # scored as if it had been the only try
        lucky_looking += activation_decision(composite_score(naive, naive), "candidate").changed
        [judged] = ev.evaluate([lucky.spec], n_trials=len(specs),
                               trial_sharpes=[e.score.sharpe for e in undeflated if math.isfinite(e.score.sharpe)],
                               ml_confidence=[naive])
        assert judged.score.dsr < lucky.score.psr
        assert not activation_decision(judged.composite, "candidate").changed, (seed, judged.to_dict())
    assert lucky_looking >= 4
