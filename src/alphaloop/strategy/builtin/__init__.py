"""Built-in strategies; importing this package registers them."""

from alphaloop.strategy.builtin.ml_multifactor import MlMultiFactor
from alphaloop.strategy.builtin.pattern_follow import PatternFollow
from alphaloop.strategy.builtin.sma_cross import SmaCross

__all__ = ["MlMultiFactor", "PatternFollow", "SmaCross"]
