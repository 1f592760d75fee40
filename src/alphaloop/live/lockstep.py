"""One timeline step of the live pipeline, written once for both ways of running it.

The backtester's per-step order (see :mod:`alphaloop.live.runner`) is a script of *broker actions*
interleaved with strategy-engine work. :func:`run_step` is that script; it asks a ``do`` callable to
carry out each broker action and to let orders and execution reports flow until both sides are idle:

* embedded (:class:`~alphaloop.live.runner.EmbeddedRunner`): ``do`` calls the paper broker directly
  (:func:`apply_action`) and pumps the in-memory bus;
* as services (``alphaloop serve``): the strategy engine sends each action, after the orders it
  precedes, as a ``clock`` marker on the orders stream; the execution service applies it with the
  same :func:`apply_action` and answers with its reports and a marker of its own. Because both
  sides see the same messages in the same batches, a run through services equals the embedded run.

``before`` (engine work that must precede the engine's handling of the action's reports, such as
``begin_bar``) is handed to ``do`` rather than run here, so a ``do`` that defers actions keeps the
engine's own order of work intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from alphaloop.bus import Envelope
from alphaloop.core.market import Bar
from alphaloop.live import messages as m

Step = list[tuple[Bar, bool]]  # (bar, is its instrument's last bar)

BAR, CHECK_RUIN, ORDERS, CLOSE, SETTLE, FINISH = "bar", "check_ruin", "orders", "close", "settle", "finish"
ACTIONS = (BAR, CHECK_RUIN, ORDERS, CLOSE, SETTLE, FINISH)


@dataclass(frozen=True, slots=True)
class Action:
    """A broker action: ``bar`` (match pending orders against ``bars[0]``), ``check_ruin`` (after
    the step's matching; ``bars`` = the step), ``orders`` (take the orders sent so far), ``close``
    (fill_on close: fill at ``bars[0]``'s close), ``settle`` (``instrument``'s data ended) and
    ``finish`` (the run is over)."""

    kind: str
    bars: tuple[Bar, ...] = ()
    instrument: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "bars": [m.bar_payload(b) for b in self.bars], "instrument": self.instrument}

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> Action:
        kind = str(p["kind"])
        if kind not in ACTIONS:
            raise ValueError(f"unknown broker action {kind!r}; known: {', '.join(ACTIONS)}")
        bars = tuple(m.bar_from_payload(b)[0] for b in p.get("bars") or ())
        return cls(kind, bars, p.get("instrument"))


Do = Callable[[Action, Callable[[], None] | None], Any]


def run_step(engine: Any, step: Step, fill_on: str, do: Do, signals: Callable[[list[Bar]], None]) -> bool:
    """Run one timeline step; True when the account was ruined (the run stops).

    ``engine`` is a :class:`~alphaloop.live.strategy_engine.StrategyEngine`; ``signals(bars)`` hands
    the step's pattern signals to it (after the histories grew, before ``on_bar``); ``settled``
    instruments are tracked by the caller from the ``last`` flags (see :func:`settle_actions`)."""
    bars = [bar for bar, _ in step]
    for bar in bars:
        do(Action(BAR, (bar,)), _begin(engine, bar))
    if do(Action(CHECK_RUIN, tuple(bars)), None):
        return True
    engine.grow(bars)
    signals(bars)
    engine.on_bar()
    do(Action(ORDERS), None)
    if fill_on == "close":
        for bar in bars:
            do(Action(CLOSE, (bar,)), None)
    for bar, last in step:
        if last:
            do(Action(SETTLE, instrument=bar.instrument), None)
    return False


def settle_rest(instruments: list[str], settled: set[str], do: Do) -> None:
    """End of the run (not ruined): every instrument not settled yet settles, as at end of data."""
    for name in instruments:
        if name not in settled:
            do(Action(SETTLE, instrument=name), None)


def _begin(engine: Any, bar: Bar) -> Callable[[], None]:
    return lambda: engine.begin_bar(bar)


def apply_action(broker: Any, action: Action) -> Any:
    """Carry out ``action`` on a :class:`~alphaloop.live.paper_broker.PaperBroker` (its orders
    waiting have been taken already); returns check_ruin's verdict, else None."""
    kind = action.kind
    if kind == BAR:
        broker.on_bar(action.bars[0])
    elif kind == CHECK_RUIN:
        return broker.check_ruin(list(action.bars))
    elif kind == CLOSE:
        broker.process_close(action.bars[0])
    elif kind == SETTLE:
        assert action.instrument is not None
        broker.settle(action.instrument)
    return None


class BarGate:
    """Which bars of the bars stream a run uses: not a redelivery (by message id), a bar message,
    well formed, for a traded instrument, sane values, later than the instrument's last bar.
    A refused bar is reported to ``fault(kind, reason)`` and skipped."""

    def __init__(self, instruments: list[str], fault: Callable[[str, str], None],
                 duplicate: Callable[[], None] | None = None):
        self._instruments = set(instruments)
        self._fault = fault
        self._duplicate = duplicate or (lambda: None)
        self._seen = m.SeenIds()
        self._last_ns: dict[str, int] = {}

    def admit(self, env: Envelope) -> tuple[Bar, bool] | None:
        if not self._seen.add(env.id):
            self._duplicate()
            return None
        if env.kind != m.BAR:
            self._fault("unexpected_message", f"bars stream: unexpected message kind {env.kind!r} ({env.id})")
            return None
        try:
            bar, last = m.bar_from_payload(env.payload)
        except (KeyError, TypeError, ValueError) as e:
            self._fault("invalid_bar", f"bar message {env.id} is malformed: {type(e).__name__}: {e}")
            return None
        if bar.instrument not in self._instruments:
            self._fault("unknown_instrument_bar", f"bar for unknown instrument {bar.instrument!r} dropped; "
                                                  f"trading: {', '.join(sorted(self._instruments))}")
            return None
        problem = m.bar_problem(bar)
        if problem is not None:
            self._fault("invalid_bar", f"{bar.instrument} bar at {bar.time} dropped: {problem}")
            return None
        t, prev = int(bar.time.value), self._last_ns.get(bar.instrument)
        if prev is not None and t <= prev:
            kind = "duplicate_bar" if t == prev else "out_of_order_bar"
            self._fault(kind, f"{bar.instrument} bar at {bar.time} dropped: {kind.replace('_', ' ')} (the last bar "
                              f"was at {pd.Timestamp(prev, tz='UTC')})")
            return None
        self._last_ns[bar.instrument] = t
        return bar, last


def split_steps(admitted: list[tuple[Bar, bool]]) -> list[Step]:
    """Consecutive bars of one timestamp make one step."""
    out: list[Step] = []
    for item in admitted:
        if out and out[-1][0][0].time == item[0].time:
            out[-1].append(item)
        else:
            out.append([item])
    return out
