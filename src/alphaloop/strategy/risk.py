"""Pre-trade risk checks: limits every order must fit before it is sent.

A :class:`RiskManager` is fed the account's equity once per bar (:meth:`RiskManager.on_equity`)
and every fill (:meth:`RiskManager.on_fill`), and answers :meth:`RiskManager.check` for each
proposed order with a :class:`RiskVerdict`: the part of the order that may go out (all of it, a
clipped part, or nothing) and the rule that cut it.

Rules (the names verdicts and :meth:`RiskManager.stats` use):

* ``max_position_size``: |position| in units per instrument;
* ``instrument_exposure`` / ``gross_exposure``: notional (|units| * price) of this instrument / of
  all instruments, as fractions of equity;
* ``daily_loss``: loss from the equity at the start of the UTC day (the last equity seen before
  the day began), and ``max_drawdown``: loss from the peak equity. Either trips the kill switch,
  which halts every new entry until :meth:`RiskManager.reset`; ``kill_switch`` is a manual
  :meth:`RiskManager.halt`;
* ``cooldown``: no new entry on an instrument for ``cooldown_bars`` bars and/or ``cooldown`` time
  after a stop-out on it;
* ``invalid_order`` / ``invalid_price`` / ``invalid_equity`` / ``invalid_exposure``: inputs that are
  NaN, non-finite or <= 0 where that makes a limit impossible to evaluate.

Orders that only reduce a position (towards zero, not past it) are always allowed: cutting risk
must never be blocked by a risk limit. An order that flips a position is a close (allowed) plus a
new entry (checked): when the entry is refused the verdict keeps the close. A clipped entry is
rounded down to ``lot_size``; an order that fits is passed through unchanged. Limits are compared
with a 1e-9 relative slack so float rounding of ``units * price`` never clips a size that fits.

Times are UTC: ``int`` nanoseconds since the epoch (as :class:`~alphaloop.core.orders.Fill` keeps
them) or ``datetime``/``pandas.Timestamp`` (naive means UTC). The hot path is plain floats.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from alphaloop.core.errors import ConfigError, OrderError
from alphaloop.strategy.sizing import check_number, floor_lots

if TYPE_CHECKING:
    from alphaloop.core.config import Settings

_isfinite = math.isfinite
_TOL = 1e-9
_DAY_NS = 86_400_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

RULES = ("max_position_size", "instrument_exposure", "gross_exposure", "daily_loss", "max_drawdown",
         "kill_switch", "cooldown", "invalid_order", "invalid_price", "invalid_equity", "invalid_exposure")


def to_ns(time: Any) -> int:
    """UTC nanoseconds since the epoch from an int (already ns) or a datetime (naive = UTC)."""
    if type(time) is int:  # the hot path: runners hand over bar times as ns
        return time
    value = getattr(time, "value", None)  # a tz-aware pandas Timestamp knows its UTC ns
    if type(value) is int and getattr(time, "tzinfo", None) is not None:
        return value
    if isinstance(time, datetime):
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        # pandas.Timestamp is a datetime with nanoseconds beyond the microseconds datetime keeps.
        return (time - _EPOCH) // _US * 1000 + getattr(time, "nanosecond", 0)
    if isinstance(time, bool):
        raise TypeError(f"time must be int ns since the epoch or a datetime, got {time!r}")
    try:
        return operator.index(time)
    except TypeError:
        raise TypeError(f"time must be int ns since the epoch or a datetime, got {time!r}") from None


def _fmt_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).isoformat()


class RiskVerdict(NamedTuple):
    """``allowed_delta``: the signed units that may be sent (0: nothing); ``rule``: the rule that
    rejected or clipped the order, None when it passed whole; ``detail``: why, for logs ("" when
    it passed)."""

    allowed_delta: float
    rule: str | None
    detail: str

    @property
    def rejected(self) -> bool:
        return self.rule is not None and self.allowed_delta == 0.0

    @property
    def clipped(self) -> bool:
        return self.rule is not None and self.allowed_delta != 0.0


_PASS_NOTHING = RiskVerdict(0.0, None, "")


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Why and when new entries were halted: ``rule`` is ``daily_loss``, ``max_drawdown`` or
    ``kill_switch`` (a manual halt)."""

    rule: str
    time_ns: int
    detail: str

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns // 1_000_000_000, UTC) + timedelta(
            microseconds=self.time_ns % 1_000_000_000 // 1000)


@dataclass(frozen=True, slots=True)
class RiskStats:
    """Counts of checks: passed whole, clipped, rejected, and clips + rejections by rule."""

    checks: int
    passed: int
    clipped: int
    rejected: int
    by_rule: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "passed": self.passed, "clipped": self.clipped,
                "rejected": self.rejected, "by_rule": dict(self.by_rule)}


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits a :class:`RiskManager` enforces. Validated once, here.

    * ``max_position_size``: units per instrument (> 0; ``Settings.max_position_size``).
    * ``max_instrument_exposure`` / ``max_gross_exposure``: notional as fractions of equity (> 0).
    * ``max_daily_loss`` / ``max_drawdown``: fractions in (0, 1] that trip the kill switch; None: off.
    * ``cooldown_bars`` (int >= 0) / ``cooldown`` (timedelta or seconds >= 0): after a fill whose
      reason is in ``stop_reasons``, no new entry on that instrument until both have elapsed.
    * ``lot_size``: clipped entries are rounded down to multiples of it (> 0; use SizingConfig's).
    """

    max_position_size: float = 1000.0
    max_instrument_exposure: float = 1.0
    max_gross_exposure: float = 1.0
    max_daily_loss: float | None = None
    max_drawdown: float | None = None
    cooldown_bars: int = 0
    cooldown: timedelta = timedelta(0)
    lot_size: float = 1.0
    stop_reasons: frozenset[str] = frozenset({"stop_loss"})

    def __post_init__(self) -> None:
        c = "RiskLimits"
        for name in ("max_position_size", "max_instrument_exposure", "max_gross_exposure", "lot_size"):
            object.__setattr__(self, name, check_number(c, name, getattr(self, name), lo=0.0))
        for name in ("max_daily_loss", "max_drawdown"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_number(c, name, getattr(self, name), lo=0.0, hi=1.0))
        bars = self.cooldown_bars
        if isinstance(bars, bool) or not isinstance(bars, int) or bars < 0:
            raise ConfigError(f"{c}.cooldown_bars = {bars!r} is invalid: expected an integer >= 0")
        cd = self.cooldown
        if not isinstance(cd, timedelta):
            seconds = check_number(c, "cooldown", cd, lo=0.0, lo_open=False)
            try:
                cd = timedelta(seconds=seconds)
            except OverflowError:
                raise ConfigError(f"{c}.cooldown = {self.cooldown!r} is invalid: too long") from None
        if cd < timedelta(0):
            raise ConfigError(f"{c}.cooldown = {self.cooldown!r} is invalid: must be >= 0")
        object.__setattr__(self, "cooldown", cd)
        reasons = self.stop_reasons
        if isinstance(reasons, str):
            reasons = (reasons,)
        try:
            reasons = frozenset(reasons)
        except TypeError:
            raise ConfigError(f"{c}.stop_reasons = {self.stop_reasons!r} is invalid: "
                              "expected a collection of fill reasons") from None
        if not all(isinstance(r, str) for r in reasons):
            raise ConfigError(f"{c}.stop_reasons = {self.stop_reasons!r} is invalid: reasons must be strings")
        object.__setattr__(self, "stop_reasons", reasons)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RiskLimits:
        """Defaults from the platform settings (``MAX_POSITION_SIZE``)."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"RiskLimits: unknown field(s) {', '.join(unknown)}")
        values: dict[str, Any] = {"max_position_size": settings.max_position_size}
        values.update(overrides)
        return cls(**values)


class RiskManager:
    """Stateful pre-trade checks for one account (see the module doc for the rules).

    Call :meth:`on_equity` once per bar (it is also the bar clock of ``cooldown_bars``: each call
    with a later time than the last starts a new bar), :meth:`on_fill` for every fill, and
    :meth:`check` before sending each order. ``current_position`` passed to :meth:`check` is taken
    as the truth for that instrument and should include orders already sent but not yet filled.
    """

    def __init__(self, limits: RiskLimits | None = None):
        self.limits = limits if limits is not None else RiskLimits()
        self._cooldown_ns = self.limits.cooldown // _US * 1000
        self._positions: dict[str, float] = {}
        self._prices: dict[str, float] = {}
        self._stops: dict[str, tuple[int, int]] = {}  # instrument -> (bar, ns) of its last stop-out
        self._bar = 0
        self._bar_ns: int | None = None
        self._day: int | None = None
        self._day_start = math.nan
        self._peak = math.nan
        self._equity = math.nan
        self._kill: KillSwitch | None = None
        self._by_rule: dict[str, int] = {}
        self._checks = self._passed = self._clipped = self._rejected = 0

    # ------------------------------------------------------------------ feeds

    def on_equity(self, time: Any, equity: float) -> None:
        """Mark the account's equity at ``time`` (once per bar). A NaN equity is ignored."""
        ns = to_ns(time)
        if self._bar_ns is None:
            self._bar_ns = ns
        elif ns > self._bar_ns:
            self._bar += 1
            self._bar_ns = ns
        self._observe(ns, float(equity))

    def on_fill(self, instrument: str, size: float, price: float, time: Any, reason: str | None = None) -> None:
        """Record a fill (signed ``size``). A reason in ``limits.stop_reasons`` starts the cooldown."""
        size, price = float(size), float(price)
        if not _isfinite(size):
            raise OrderError(f"fill on {instrument}: size {size!r} is not finite")
        if not (price > 0 and _isfinite(price)):
            raise OrderError(f"fill on {instrument}: price {price!r} must be finite and > 0")
        ns = to_ns(time)  # validated before any state changes
        self._positions[instrument] = self._positions.get(instrument, 0.0) + size
        self._prices[instrument] = price
        if reason is not None and reason in self.limits.stop_reasons:
            self._stops[instrument] = (self._bar_at(ns), ns)

    def mark(self, instrument: str, price: float) -> None:
        """Update the price that values ``instrument`` in the gross exposure (invalid prices ignored)."""
        if price > 0 and _isfinite(price):
            self._prices[instrument] = float(price)

    # ------------------------------------------------------------------ the check

    def check(self, instrument: str, time: Any, current_position: float, proposed_delta: float,
              price: float, equity: float, *, other_exposure: float | None = None) -> RiskVerdict:
        """How much of ``proposed_delta`` (signed units) may be sent now.

        ``other_exposure``: the gross notional held in the other instruments, if the caller knows it
        better than this manager (positions from fills, valued at the last prices seen).
        """
        self._checks += 1
        cur, delta = float(current_position), float(proposed_delta)
        new = cur + delta
        if not _isfinite(new):  # also catches a NaN or infinite cur or delta
            return self._cut(0.0, "invalid_order",
                             f"{instrument}: position {cur!r} and delta {delta!r} must be finite")
        # The caller's position and price are the freshest: they value this instrument in the
        # gross exposure of later checks on other instruments.
        self._positions[instrument] = cur
        price_ok = price > 0 and _isfinite(price)
        if price_ok:
            self._prices[instrument] = float(price)
        ns = to_ns(time)
        self._observe(ns, float(equity))  # the freshest equity can trip the kill switch too
        if delta == 0.0:
            self._passed += 1
            return _PASS_NOTHING

        if (cur > 0.0 and -cur <= delta < 0.0) or (cur < 0.0 and 0.0 < delta <= -cur):
            self._passed += 1  # a pure reduction: always allowed
            return RiskVerdict(delta, None, "")

        # An entry: growing the position, or opening the opposite side after closing this one.
        sign = 1.0 if new > 0 else -1.0
        base = cur if cur * sign > 0 else 0.0
        closing = base - cur  # nonzero only for a flip; always allowed
        have, want = abs(base), abs(new)

        if self._kill is not None:
            k = self._kill
            return self._cut(closing, k.rule, f"{instrument}: new entries halted since {_fmt_ns(k.time_ns)} "
                                              f"({k.detail}); reset() resumes them")
        if self._cooling(instrument, ns):
            bar, sns = self._stops[instrument]
            return self._cut(closing, "cooldown", f"{instrument}: cooling down after the stop-out at "
                                                   f"{_fmt_ns(sns)} (bar {bar})")
        if not price_ok:
            return self._cut(closing, "invalid_price", f"{instrument}: price {price!r} must be finite and > 0")
        if not (equity > 0 and _isfinite(equity)):
            return self._cut(closing, "invalid_equity", f"{instrument}: equity {equity!r} must be finite and > 0")
        if other_exposure is None:
            others = self.gross_exposure(exclude=instrument)
        elif other_exposure >= 0 and _isfinite(other_exposure):
            others = float(other_exposure)
        else:
            return self._cut(closing, "invalid_exposure",
                             f"{instrument}: other_exposure {other_exposure!r} must be finite and >= 0")

        lim = self.limits
        size, rule, cap_text = want, None, ""
        # Caps in units, the tightest one that the order exceeds (beyond rounding slack) binds.
        cap = lim.max_position_size
        if want > cap * (1.0 + _TOL) and cap < size:
            size, rule, cap_text = cap, "max_position_size", f"max {cap:g} units"
        cap = lim.max_instrument_exposure * equity / price
        if want > cap * (1.0 + _TOL) and cap < size:
            size, rule = cap, "instrument_exposure"
            cap_text = f"{lim.max_instrument_exposure:g} x equity {equity:g} at price {price:g}"
        room = lim.max_gross_exposure * equity - others
        cap = max(0.0, room) / price
        if want > cap * (1.0 + _TOL) and cap < size:
            size, rule = cap, "gross_exposure"
            cap_text = (f"{lim.max_gross_exposure:g} x equity {equity:g}, {others:g} held in other "
                        f"instruments, at price {price:g}")
        if rule is None:
            self._passed += 1
            return RiskVerdict(delta, None, "")
        entry = floor_lots(size - have, lim.lot_size) if size > have else 0.0
        allowed = closing + sign * entry
        return self._cut(allowed, rule, f"{instrument}: position {new:g} wanted, {cur + allowed:g} allowed "
                                        f"({cap_text})")

    def _cut(self, allowed: float, rule: str, detail: str) -> RiskVerdict:
        if allowed == 0.0:
            self._rejected += 1
            allowed = 0.0  # never a signed zero
        else:
            self._clipped += 1
        self._by_rule[rule] = self._by_rule.get(rule, 0) + 1
        return RiskVerdict(allowed, rule, detail)

    # ------------------------------------------------------------------ state

    def _bar_at(self, ns: int) -> int:
        """Bar index of an event at ``ns``: a time after the last on_equity belongs to the next bar
        (fills of a bar arrive before that bar's on_equity)."""
        if self._bar_ns is None:
            return 0
        return self._bar + 1 if ns > self._bar_ns else self._bar

    def _cooling(self, instrument: str, ns: int) -> bool:
        stop = self._stops.get(instrument)
        if stop is None:
            return False
        bar, sns = stop
        if self._bar_at(ns) - bar < self.limits.cooldown_bars or ns < sns + self._cooldown_ns:
            return True
        del self._stops[instrument]
        return False

    def _observe(self, ns: int, equity: float) -> None:
        if not _isfinite(equity):
            return
        day = ns // _DAY_NS
        if self._day is None:
            self._day, self._day_start, self._peak = day, equity, equity
        elif day > self._day:
            # Equity at 00:00 UTC is the last mark before it: with daily bars the day's loss is that
            # bar's loss, not zero.
            self._day, self._day_start = day, self._equity
        if equity > self._peak:
            self._peak = equity
        self._equity = equity
        if self._kill is not None:
            return
        lim = self.limits
        if lim.max_daily_loss is not None and self._day_start > 0:
            loss = (self._day_start - equity) / self._day_start
            if loss >= lim.max_daily_loss:
                self._kill = KillSwitch("daily_loss", ns, f"daily loss {loss:.2%} from {self._day_start:g} "
                                                          f"at the start of the UTC day >= {lim.max_daily_loss:.2%}")
                return
        if lim.max_drawdown is not None and self._peak > 0:
            dd = (self._peak - equity) / self._peak
            if dd >= lim.max_drawdown:
                self._kill = KillSwitch("max_drawdown", ns, f"drawdown {dd:.2%} from peak {self._peak:g} "
                                                            f">= {lim.max_drawdown:.2%}")

    def halt(self, time: Any, detail: str = "halted by hand") -> None:
        """Trip the kill switch by hand (rule ``kill_switch``); a switch already tripped is kept."""
        if self._kill is None:
            self._kill = KillSwitch("kill_switch", to_ns(time), detail)

    def reset(self) -> None:
        """Clear the kill switch. The peak and the day's start are re-based at the last equity seen,
        so the loss that tripped it does not trip it again at once. Cooldowns keep running."""
        self._kill = None
        if _isfinite(self._equity):
            self._peak = self._day_start = self._equity

    @property
    def kill_switch(self) -> KillSwitch | None:
        """Why and when new entries were halted, or None while trading."""
        return self._kill

    @property
    def halted(self) -> bool:
        return self._kill is not None

    @property
    def peak_equity(self) -> float:
        return self._peak

    @property
    def day_start_equity(self) -> float:
        return self._day_start

    def position(self, instrument: str) -> float:
        return self._positions.get(instrument, 0.0)

    def gross_exposure(self, exclude: str | None = None) -> float:
        """Sum of |units| * last price over instruments (but ``exclude``); inf if a held one has no price,
        so an unvalued position blocks new gross exposure rather than hiding it."""
        total = 0.0
        for inst, units in self._positions.items():
            if units and inst != exclude:
                px = self._prices.get(inst)
                if px is None:
                    return math.inf
                total += abs(units) * px
        return total

    def stats(self) -> RiskStats:
        return RiskStats(self._checks, self._passed, self._clipped, self._rejected, dict(self._by_rule))


__all__ = ["RULES", "KillSwitch", "RiskLimits", "RiskManager", "RiskStats", "RiskVerdict", "to_ns"]
