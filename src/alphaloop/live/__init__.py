"""The live pipeline, embedded: market data replay, pattern stage, strategy engine and paper broker
joined by a message bus, running any Strategy exactly as the backtester runs it.

``EmbeddedRunner(strategy, sources, broker_config).run()`` returns a :class:`RunSummary`; the same
strategy, data and broker settings give the same orders, fills and final equity as ``run_backtest``.
"""

from alphaloop.live.context import LiveContext
from alphaloop.live.indicators import STREAMING_TWINS
from alphaloop.live.messages import Streams
from alphaloop.live.paper_broker import PaperBroker
from alphaloop.live.pattern_stage import PatternStage
from alphaloop.live.recorder import Recorder
from alphaloop.live.replay import BarSource, MarketDataReplay
from alphaloop.live.runner import EmbeddedRunner, RunSummary
from alphaloop.live.strategy_engine import StrategyEngine

__all__ = [
    "STREAMING_TWINS",
    "BarSource",
    "EmbeddedRunner",
    "LiveContext",
    "MarketDataReplay",
    "PaperBroker",
    "PatternStage",
    "Recorder",
    "RunSummary",
    "StrategyEngine",
    "Streams",
]
