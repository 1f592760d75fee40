"""The embedded live pipeline: market data, pattern stage, strategy engine and paper broker in one
process, joined by a message bus, driven by a deterministic pump.

Per timeline step (the bars of one timestamp), the pump does what the backtester does, in its order:

1. for each bar: the broker matches pending orders against it; the fills reach the strategy engine
   (account, recorder, ``on_fill``), and orders sent from ``on_fill`` reach the broker;
2. the broker checks for ruin (equity gone: liquidate at the close and stop);
3. histories and indicators grow by the step's bars;
4. the pattern stage turns the bars into signals; the engine hands each to ``on_signal``;
5. ``on_bar``; the orders it sent are queued at the broker (they fill on the next bar, or with
   ``fill_on="close"`` at this bar's close, processed now);
6. an instrument whose data ended settles: pending orders cancelled, lots closed at its last open.

The run ends at the end of the data, after ``max_bars`` steps, on :meth:`EmbeddedRunner.stop`
(Ctrl-C calls it: the current step finishes), or when the account is ruined. Every instrument not
settled yet then settles like the backtester's end of data, and a :class:`RunSummary` is returned
(and handed to the recorder's ``finish_run``).

Bars reach the broker, engine and pattern stage through the pump (it reads the bars stream and
calls each stage in the order above: that order is what makes a live run equal its backtest);
signals, orders, execution reports and decisions travel on their own streams.
"""

from __future__ import annotations

import logging
import signal as signals
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from alphaloop.bus import InMemoryBus, MessageBus
from alphaloop.core.decisions import Decision
from alphaloop.core.errors import StrategyError
from alphaloop.core.ids import new_id
from alphaloop.core.market import Bar
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.execution.broker import BrokerConfig
from alphaloop.live import messages as m
from alphaloop.live.lockstep import CHECK_RUIN, Action, apply_action, run_step, settle_rest, split_steps
from alphaloop.live.paper_broker import PaperBroker
from alphaloop.live.pattern_stage import PatternStage
from alphaloop.live.replay import as_source, publish_step
from alphaloop.live.strategy_engine import StrategyEngine
from alphaloop.strategy.base import Strategy
from alphaloop.strategy.services import Services

log = logging.getLogger(__name__)
BUS_MAXLEN = 100_000  # entries kept per stream on the default in-memory bus (acknowledged ones go first)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    strategy: str
    instruments: list[str]
    ended: str  # end_of_data, max_bars, stopped or ruined
    bars: int  # bars the strategy saw
    steps: int  # timeline steps published
    signals: int
    decisions: int
    orders: int  # orders the strategy sent
    fills: int
    orders_rejected: int  # by the broker (insufficient cash, invalid)
    rejections: dict[str, int]  # risk rule -> decisions it refused
    realized_pnl: float
    unrealized_pnl: float
    final_equity: float
    cash: float
    positions: dict[str, float]
    latency_p50_us: float | None
    latency_p99_us: float | None
    inference_paths: dict[str, int]
    errors: dict[str, int]  # fault kind -> count (engine, broker and pattern stage)
    last_error: str | None
    wall_s: float
    stats: dict[str, Any] = field(default_factory=dict, repr=False)  # engine.stats(), broker and stage stats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EmbeddedRunner:
    """Run ``strategy`` live on paper over ``sources``: a path, DataFrame, list or mapping of them
    (replayed with :class:`~alphaloop.live.replay.MarketDataReplay`), or any bar source (such as
    ``MarketDataReplay.synthetic(...)``). The broker uses ``broker_config`` exactly as a backtest
    does. ``recorder`` (optional) persists decisions, orders and fills (see :mod:`.recorder`);
    ``on_decision`` is called with each decision."""

    def __init__(self, strategy: Strategy, sources: Any, broker_config: BrokerConfig | None = None,
                 services: Services | None = None, recorder: Any = None, bus: MessageBus | None = None,
                 on_decision: Callable[[Decision], None] | None = None, *, run_id: str | None = None,
                 feature_window: int | None = None, streams: m.Streams | None = None):
        self.strategy = strategy
        self.source = as_source(sources)
        self.instruments = list(self.source.instruments)
        self.config = broker_config or BrokerConfig()
        self.bus = bus if bus is not None else InMemoryBus(maxlen=BUS_MAXLEN)
        self.streams = streams or m.Streams()
        self.run_id = run_id or new_id("live")
        self.recorder = recorder
        self.engine = StrategyEngine(strategy, self.instruments, self.bus, self.config, services=services,
                                     recorder=recorder, streams=self.streams, run_id=self.run_id,
                                     feature_window=feature_window, on_decision=on_decision)
        self.broker = PaperBroker(self.instruments, self.config, self.bus, streams=self.streams, run_id=self.run_id)
        detectors = strategy.pattern_detectors()
        self.patterns = PatternStage(detectors, self.bus, streams=self.streams, run_id=self.run_id) if detectors else None
        self.bus.ensure_group(self.streams.bars, "pump")
        self._bar_ids = m.IdSource(self.run_id, "market-data")
        self._stop = threading.Event()
        self._steps = 0
        self._used = False
        self.summary: RunSummary | None = None

    def stop(self) -> None:
        """Ask the run to end after the current step (safe from another thread or a signal handler)."""
        self._stop.set()

    # ---- the run -------------------------------------------------------------------------------
    def run(self, max_bars: int | None = None) -> RunSummary:
        """Run until the data ends, ``max_bars`` timeline steps (bars, for one instrument) have been
        published, :meth:`stop` is called or the account is ruined; settle; summarise."""
        if self._used:
            raise StrategyError("an EmbeddedRunner runs once; make a new one")
        self._used = True
        t0 = time.perf_counter()
        self.engine.start()
        self._start_recorder()
        ended = "end_of_data"
        speed = float(getattr(self.source, "speed", 0.0) or 0.0)
        with _ctrl_c_stops(self.stop):
            steps = self.source.steps()
            while True:
                if max_bars is not None and self._steps >= max_bars:
                    ended = "max_bars"
                    break
                if self._stop.is_set():
                    ended = "stopped"
                    break
                step = next(steps, None)
                if step is None:
                    break
                if speed > 0 and self._stop.wait(max(0.0, t0 + self._steps / speed - time.perf_counter())):
                    ended = "stopped"
                    break
                publish_step(self.bus, self.streams.bars, step, self._bar_ids)
                self._steps += 1
                if self._pump():
                    ended = "ruined"
                    break
            if ended != "ruined":
                settle_rest(self.instruments, self.broker.settled, self._do)
        self.engine.stopped = True
        self.summary = self._summary(ended, time.perf_counter() - t0)
        self._finish_recorder(self.summary)
        log.info("live run %s ended (%s): %d bars, %d orders, %d fills, equity %.2f, %d errors", self.run_id, ended,
                 self.summary.bars, self.summary.orders, self.summary.fills, self.summary.final_equity,
                 sum(self.summary.errors.values()))
        return self.summary

    def _pump(self) -> bool:
        """Process every bar waiting on the bars stream, a timestamp at a time; True if ruined."""
        admitted: list[tuple[Bar, bool]] = []
        while True:
            batch = self.bus.read(self.streams.bars, "pump", "pump-1", count=1000)
            if not batch:
                break
            for r in batch:
                bar = self.engine.admit(r.envelope)
                if bar is not None:
                    admitted.append(bar)
            self.bus.ack(self.streams.bars, "pump", [r.entry_id for r in batch])
        return any(self._step(step) for step in split_steps(admitted))

    def _exchange(self) -> None:
        """Let orders and execution reports flow until both sides are idle."""
        while self.broker.poll_orders() + self.engine.poll_fills():
            pass

    def _do(self, action: Action, before: Callable[[], None] | None) -> Any:
        """A broker action, at once, then the exchange it starts (check_ruin: only when ruined)."""
        if before is not None:
            before()
        result = apply_action(self.broker, action)
        if action.kind != CHECK_RUIN or result:
            self._exchange()
        return result

    def _step(self, step: list[tuple[Bar, bool]]) -> bool:
        return run_step(self.engine, step, self.config.fill_on, self._do, self._signals)

    def _signals(self, bars: list[Bar]) -> None:
        if self.patterns is not None:
            for bar in bars:
                self.patterns.on_bar(bar)
        self.engine.poll_signals()

    # ---- recorder and summary ------------------------------------------------------------------
    def _start_recorder(self) -> None:
        returned = start_recorder(self.recorder, run_id=self.run_id, mode=getattr(self.source, "mode", "replay"),
                                  instruments=self.instruments, strategy=self.strategy, config=self.config,
                                  fault=self.engine.fault)
        if isinstance(returned, str):
            self.engine.record_run_id = returned

    def _finish_recorder(self, summary: RunSummary) -> None:
        finish = getattr(self.recorder, "finish_run", None)
        if finish is None:
            return
        data = summary.to_dict()
        data.pop("stats", None)
        try:
            finish(run_id=self.engine.record_run_id, summary=data,
                   status="failed" if summary.ended == "ruined" else "finished")
        except Exception as e:
            self.engine.fault("recorder_error", f"recorder.finish_run failed: {type(e).__name__}: {e}")

    def _summary(self, ended: str, wall_s: float) -> RunSummary:
        stats = self.engine.stats()
        b = self.broker.broker  # its books are marked at each instrument's last close
        errors = dict(self.engine.faults)
        for key in ("duplicate_order_id", "invalid_message", "unexpected_message"):
            if self.broker.counts.get(key):
                errors[f"broker_{key}"] = self.broker.counts[key]
        if self.patterns is not None and self.patterns.counts.get("refused_bars"):
            errors["patterns_refused_bars"] = self.patterns.counts["refused_bars"]
        p50, p99 = self.engine.latency_percentiles()
        return RunSummary(
            run_id=self.engine.record_run_id, strategy=self.strategy.name or type(self.strategy).__name__,
            instruments=list(self.instruments), ended=ended, bars=stats["bars"], steps=self._steps,
            signals=stats["signals"], decisions=stats["decisions"], orders=stats["orders_sent"], fills=stats["fills"],
            orders_rejected=stats["orders_rejected"], rejections=stats["rejections"],
            realized_pnl=self.broker.realized_pnl(), unrealized_pnl=self.broker.unrealized_pnl(),
            final_equity=b.equity(), cash=b.cash, positions={bk.name: bk.size for bk in b.books},
            latency_p50_us=p50, latency_p99_us=p99, inference_paths=stats["inference_paths"], errors=errors,
            last_error=self.engine.last_error, wall_s=wall_s,
            stats={"engine": stats, "broker": self.broker.stats(),
                   "patterns": None if self.patterns is None else self.patterns.stats()})


def start_recorder(recorder: Any, *, run_id: str, mode: str, instruments: list[str], strategy: Strategy,
                   config: BrokerConfig, fault: Callable[[str, str], None]) -> Any:
    """Tell the recorder (if it wants to know) that the run starts: its spec and broker settings.
    Returns what ``start_run`` returned (a recorder may assign its own run id)."""
    start = getattr(recorder, "start_run", None)
    if start is None:
        return None
    c = config
    settings = {"initial_cash": c.initial_cash, "commission": asdict(c.commission), "spread": c.spread,
                "slippage": repr(c.slippage), "fill_on": c.fill_on, "lot_size": c.lot_size}
    spec = StrategySpec(strategy.name or type(strategy).__name__, dict(strategy.parameters))
    try:
        return start(run_id=run_id, mode=mode, instruments=instruments, spec=spec, settings=settings)
    except Exception as e:
        fault("recorder_error", f"recorder.start_run failed: {type(e).__name__}: {e}")
        return None


@contextmanager
def _ctrl_c_stops(stop: Callable[[], None]) -> Iterator[None]:
    """While running in the main thread, the first Ctrl-C asks for a clean stop (finish the step,
    settle, summarise); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signals.getsignal(signals.SIGINT)
    asked = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        log.warning("Ctrl-C: stopping after the current bar (Ctrl-C again to interrupt now)")
        stop()

    signals.signal(signals.SIGINT, handler)
    try:
        yield
    finally:
        signals.signal(signals.SIGINT, previous)
