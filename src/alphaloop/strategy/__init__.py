"""The Strategy interface, built-in strategies and their registry."""

from alphaloop.strategy.base import Context, History, Strategy
from alphaloop.strategy.registry import load_strategy, register_strategy, strategy_names

__all__ = ["Context", "History", "Strategy", "load_strategy", "register_strategy", "strategy_names"]
