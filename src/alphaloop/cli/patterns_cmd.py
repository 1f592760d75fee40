"""``alphaloop patterns``: run the pattern engine over bar files and list the signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, table


def _scalar(text: str) -> int | float | str:
    """Command-line values arrive as text; numbers become numbers, the detector checks the rest."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_detector(text: str) -> str | tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME:key=value,key=value``."""
    name, sep, rest = text.partition(":")
    if not sep:
        return name.strip()
    params: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"expected NAME:key=value,..., got {text!r}", param_hint="--detector")
        params[key.strip()] = _scalar(value.strip())
    return name.strip(), params


@click.command("patterns")
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="CSV or Parquet bars; repeat for several instruments.")
@click.option("--detector", "detectors", multiple=True, metavar="NAME[:k=v,...]",
              help="Detector to run, with optional parameters; repeatable (default: every built-in).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with a `signals` list.")
def patterns(data_paths: tuple[Path, ...], detectors: tuple[str, ...], as_json: bool) -> None:
    """Detect patterns (EMA cross, VWAP deviation, volatility breakout, RSI extremes, ...) in bars.

    \b
    Example:
      alphaloop patterns --data BTC-USD.csv --detector ema_cross:fast=8,slow=21 --detector rsi_extremes
    """
    from alphaloop.data import load_bars
    from alphaloop.patterns import PatternEngine

    specs: list[Any] = [parse_detector(d) for d in detectors] or None  # type: ignore[assignment]
    engine = PatternEngine(specs)  # unknown detectors and parameters fail before any I/O
    signals = []
    for path in data_paths:
        df = load_bars(path)
        signals.extend(engine.run(df, df.attrs["instrument"]))
    rows = [{"instrument": s.instrument, "bar": s.bar, "time": s.time, "pattern": s.pattern,
             "direction": str(s.direction), "strength": s.strength, "features": s.features} for s in signals]
    if as_json:
        emit_json({"detectors": [d.name for d in engine.detectors], "signals": rows})
        return
    click.echo(table([(r["instrument"], r["bar"], r["time"], r["pattern"], r["direction"], r["strength"])
                      for r in rows], ("instrument", "bar", "time", "pattern", "direction", "strength")))
    click.echo(f"{len(rows)} signals from {len(engine.detectors)} detectors")


COMMANDS = [patterns]
