"""The event-driven backtester, performance metrics and result fingerprints."""

from alphaloop.backtest.engine import run_backtest
from alphaloop.backtest.fingerprint import fingerprint
from alphaloop.backtest.metrics import compute_metrics

__all__ = ["compute_metrics", "fingerprint", "run_backtest"]
