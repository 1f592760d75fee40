"""alphaloop: an ML-driven strategy platform. One strategy code for backtests and live trading."""

__version__ = "0.1.0"
