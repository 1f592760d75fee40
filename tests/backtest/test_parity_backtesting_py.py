"""sma_cross reproduces backtesting.py 0.6.6's SmaCross example, trade for trade, on any data.

The reference is the real library, run in the test: no numbers are copied.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest  # noqa: E402
from backtesting import Strategy as BtStrategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402
from backtesting.test import SMA  # noqa: E402

from alphaloop.backtest import run_backtest  # noqa: E402
from alphaloop.data import load_bars  # noqa: E402
from alphaloop.execution import BrokerConfig, Commission  # noqa: E402
from alphaloop.strategy import load_strategy  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"


class SmaCross(BtStrategy):  # backtesting.py's README example, parameterised
    n1 = 10
    n2 = 20

    def init(self):
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def reference(df: pd.DataFrame, fast: int, slow: int, cash: float, commission: float) -> pd.Series:
    bt_df = df.rename(columns=str.capitalize)
    bt_df.index = bt_df.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(bt_df, SmaCross, cash=cash, commission=commission, exclusive_orders=True,
                      finalize_trades=True)
        return bt.run(n1=fast, n2=slow)


def ours(df: pd.DataFrame, fast: int, slow: int, cash: float, commission: float):
    strategy = load_strategy("sma_cross", {"fast": fast, "slow": slow})
    return run_backtest(strategy, df, BrokerConfig(initial_cash=cash, commission=Commission(rate=commission)))


def assert_same(df: pd.DataFrame, fast: int, slow: int, cash: float, commission: float) -> None:
    ref = reference(df, fast, slow, cash, commission)
    res = ours(df, fast, slow, cash, commission)
    theirs = ref["_trades"]
    assert len(res.trades) == len(theirs)
    assert res.trades["entry_bar"].tolist() == theirs["EntryBar"].tolist()
    assert res.trades["exit_bar"].tolist() == theirs["ExitBar"].tolist()
    assert res.trades["size"].tolist() == theirs["Size"].astype(float).tolist()
    np.testing.assert_allclose(res.trades["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(res.trades["exit_price"], theirs["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(res.trades["pnl"], theirs["PnL"], rtol=1e-9, atol=1e-9)
    # One deliberate difference: an order sent on the very last bar. backtesting.py's finalize pass
    # fills it at that bar's open (before it was sent) and leaves the trade open, marked at the close;
    # alphaloop cancels it. Take that phantom trade out of backtesting.py's final equity.
    broker = ref["_strategy"]._broker
    phantom = sum(t.pl - broker._commission(t.size, t.entry_price) for t in broker.trades)
    assert res.open_trades.empty
    assert res.final_equity == pytest.approx(ref["Equity Final [$]"] - phantom, rel=1e-6)
    if not broker.trades:
        assert res.metrics["return_pct"] == pytest.approx(ref["Return [%]"], rel=1e-6, abs=1e-9)
        assert res.metrics["max_drawdown_pct"] == pytest.approx(ref["Max. Drawdown [%]"], rel=1e-6, abs=1e-9)
        # the whole equity curve, bar by bar (backtesting.py back-fills its warm-up from the first
        # value it records, which the phantom trade would have changed)
        np.testing.assert_allclose(res.equity["equity"].to_numpy(), ref["_equity_curve"]["Equity"].to_numpy(),
                                   rtol=1e-9)


def test_readme_example_on_goog():
    df = load_bars(FIXTURES / "GOOG_daily.csv")
    assert_same(df, 10, 20, 10_000.0, 0.002)
    res = ours(df, 10, 20, 10_000.0, 0.002)
    assert len(res.trades) > 50  # the example trades often: the comparison above is not vacuous


@pytest.mark.parametrize("fast,slow,commission", [(5, 30, 0.0), (20, 60, 0.001), (3, 7, 0.01)])
def test_other_parameters_on_real_data(fast, slow, commission):
    for name in ("GOOG_daily.csv", "BTC-USD_daily.csv"):
        df = load_bars(FIXTURES / name)
        assert_same(df, fast, slow, 1_000_000.0, commission)


@st.composite
def random_bars(draw):
    n = draw(st.integers(min_value=30, max_value=300))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    vol = draw(st.sampled_from([0.005, 0.02, 0.06]))
    rng = np.random.default_rng(seed)
    close = np.round(50 * np.exp(np.cumsum(rng.normal(0, vol, n))), 2).clip(0.01)
    open_ = np.round(np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, vol / 3, n)), 2).clip(0.01)
    high = np.maximum(open_, close) + np.round(np.abs(rng.normal(0, vol * 20, n)), 2)
    low = (np.minimum(open_, close) - np.round(np.abs(rng.normal(0, vol * 20, n)), 2)).clip(0.01)
    index = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.integers(1, 10_000, n).astype(float)}, index=index)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=random_bars(), fast=st.integers(2, 12), gap=st.integers(1, 20),
       commission=st.sampled_from([0.0, 0.0005, 0.002, 0.01, 0.05]),
       cash=st.sampled_from([500.0, 10_000.0, 250_000.0]))
def test_parity_holds_for_any_data(df, fast, gap, commission, cash):
    assert_same(df, fast, fast + gap, cash, commission)
