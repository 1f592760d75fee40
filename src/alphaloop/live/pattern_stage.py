"""Bars in, pattern signals out on the signals stream: one PatternEngine for the detectors the
strategy listens to (state per instrument, exactly as the backtester runs it inline)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from alphaloop.bus import MessageBus
from alphaloop.core.market import Bar
from alphaloop.live import messages as m
from alphaloop.patterns import PatternEngine, PatternError

log = logging.getLogger(__name__)


class PatternStage:
    def __init__(self, detectors: list[Any], bus: MessageBus, *, streams: m.Streams | None = None,
                 run_id: str = "run"):
        self.engine = PatternEngine(detectors)
        self.bus, self.streams = bus, streams or m.Streams()
        self._ids = m.IdSource(run_id, "patterns")
        self.counts: Counter[str] = Counter()

    def on_bar(self, bar: Bar) -> int:
        """Feed one bar; publish and count the signals it triggers. A bar the engine refuses (out of
        order, non-finite) is logged and skipped: the stage keeps running."""
        try:
            signals = self.engine.on_bar(bar)
        except PatternError as e:
            self.counts["refused_bars"] += 1
            log.warning("pattern stage skipped a bar: %s", e)
            return 0
        for s in signals:
            self.bus.publish(self.streams.signals, m.envelope(m.SIGNAL, self._ids(), m.signal_payload(s), "patterns"))
        self.counts["signals"] += len(signals)
        return len(signals)

    def stats(self) -> dict[str, Any]:
        return {"detectors": [d.name for d in self.engine.detectors], **dict(self.counts)}
