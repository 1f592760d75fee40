"""``alphaloop data``: validate, describe and generate bar files."""

from __future__ import annotations

from pathlib import Path

import click

from alphaloop.cli.output import emit_json, table


@click.group("data")
def data_group() -> None:
    """Market data files: validate, describe, generate synthetic bars."""


@data_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tz", default=None, help="Time zone of naive timestamps (default UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def validate(files: tuple[Path, ...], tz: str | None, as_json: bool) -> None:
    """Load and validate bar files; the first problem is reported with its file, line and field."""
    from alphaloop.data import load_bars

    rows = []
    for f in files:
        df = load_bars(f, tz=tz)
        rows.append({"file": str(f), "instrument": df.attrs["instrument"], "bars": len(df),
                     "start": df.index[0], "end": df.index[-1]})
    if as_json:
        emit_json({"files": rows})
    else:
        click.echo(table([(r["file"], r["instrument"], r["bars"], r["start"], r["end"]) for r in rows],
                         ("file", "instrument", "bars", "start", "end")))


@data_group.command("generate")
@click.option("--bars", "n", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--regime", type=click.Choice(["mixed", "trend", "mean_revert", "vol_cluster"]), default="mixed",
              show_default=True)
@click.option("--freq", default="1D", show_default=True, help="Bar spacing as a pandas offset (1min, 1h, 1D).")
@click.option("--start", default="2020-01-01", show_default=True)
@click.option("--instrument", default="SYNTH", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (.csv or .parquet).")
def generate(n: int, seed: int, regime: str, freq: str, start: str, instrument: str, out: Path) -> None:
    """Write deterministic synthetic bars (same seed, same bytes)."""
    from alphaloop.data import generate_bars

    df = generate_bars(n, seed=seed, regime=regime, freq=freq, start=start, instrument=instrument)  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(out)
    else:
        df.to_csv(out, float_format="%.6f")
    click.echo(f"wrote {len(df)} bars to {out}")


COMMANDS = [data_group]
