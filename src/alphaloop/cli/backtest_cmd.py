"""``alphaloop backtest`` and ``alphaloop demo``."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, table
from alphaloop.core.results import BacktestResult

_SUMMARY = (("Start", "start"), ("End", "end"), ("Bars", "n_bars"))
_METRICS = (
    ("Initial cash", "initial_cash"), ("Final equity", "final_equity"), ("Peak equity", "peak_equity"),
    ("Return [%]", "return_pct"), ("Buy & hold return [%]", "buy_and_hold_return_pct"),
    ("Return (ann.) [%]", "return_ann_pct"), ("Volatility (ann.) [%]", "volatility_ann_pct"),
    ("Sharpe", "sharpe"), ("Sortino", "sortino"), ("Calmar", "calmar"),
    ("Max drawdown [%]", "max_drawdown_pct"), ("Max drawdown duration [bars]", "max_drawdown_duration_bars"),
    ("Exposure [%]", "exposure_pct"), ("Trades", "n_trades"), ("Win rate [%]", "win_rate_pct"),
    ("Profit factor", "profit_factor"), ("Expectancy", "expectancy"), ("Avg trade [%]", "avg_trade_pct"),
    ("Best trade [%]", "best_trade_pct"), ("Worst trade [%]", "worst_trade_pct"), ("Commissions", "commissions"),
)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A tqdm bar on stderr when it is a terminal; nothing otherwise (pipes, --json)."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=None, unit="bar", file=sys.stderr, leave=False, mininterval=0.2)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def result_json(result: BacktestResult) -> dict[str, Any]:
    m = result.metrics
    return {
        "run_id": result.run_id, "strategy": result.spec.to_dict(), "instruments": result.instruments,
        "start": result.start, "end": result.end, "n_bars": result.n_bars,
        "final_equity": m["final_equity"], "return_pct": m["return_pct"],
        "max_drawdown_pct": m["max_drawdown_pct"], "sharpe": m["sharpe"], "n_trades": int(m["n_trades"]),
        "fingerprint": result.fingerprint, "metrics": m, "trades": result.trades_as_records(),
        "open_trades": len(result.open_trades),
        "decisions": _decision_counts(result),
    }


def _decision_counts(result: BacktestResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in result.decisions:
        counts[d.action] = counts.get(d.action, 0) + 1
    return counts


def print_result(result: BacktestResult) -> None:
    head = [(label, getattr(result, key)) for label, key in _SUMMARY]
    head.insert(0, ("Strategy", result.spec.name))
    head.insert(1, ("Instruments", ", ".join(result.instruments)))
    rows = head + [(label, result.metrics.get(key, float("nan"))) for label, key in _METRICS]
    if result.decisions:
        rows.append(("Decisions", ", ".join(f"{k} {v}" for k, v in sorted(_decision_counts(result).items()))))
    rows += [("Fingerprint", result.fingerprint[:16]), ("Run id", result.run_id or "(not stored)")]
    click.echo(table(rows))
    params = ", ".join(f"{k}={v}" for k, v in result.spec.params.items())
    click.echo(textwrap.fill(f"Parameters: {params}", width=100, subsequent_indent="  "))


def run_and_store(settings: Any, data_paths: list[Path] | None, strategy_ref: str, params: dict[str, Any],
                  *, cash: float, commission: float, spread: float, slippage_bps: float, fill_on: str,
                  lot_size: float, store: bool, progress: bool, model: str | None = None,
                  news: Path | None = None) -> BacktestResult:
    from alphaloop.backtest import run_backtest
    from alphaloop.core.strategy_spec import StrategySpec
    from alphaloop.data import load_bars, load_many, sample_paths
    from alphaloop.execution import BrokerConfig, Commission, FixedSlippage, NoSlippage
    from alphaloop.strategy import load_strategy

    strategy = load_strategy(strategy_ref, params)  # bad names and parameters fail before any I/O
    paths = data_paths or sample_paths()
    data = load_bars(paths[0]) if len(paths) == 1 else load_many(paths)
    config = BrokerConfig(initial_cash=cash, commission=Commission(rate=commission), spread=spread,
                          slippage=FixedSlippage(slippage_bps) if slippage_bps else NoSlippage(),
                          fill_on=fill_on, lot_size=lot_size)
    spec = StrategySpec(strategy_ref, dict(strategy.parameters))
    from alphaloop.cli.wiring import build_services

    services, _ = build_services(settings, model, news, live=False)
    update, close = _progress_bar(progress)
    try:
        result = run_backtest(strategy, data, config, spec=spec, progress=update, services=services)
    finally:
        close()
        services.close()
    result.data_source = ", ".join(str(p) for p in paths)
    if store:
        from alphaloop.store import Store

        with Store.from_settings(settings) as db:
            db.save_backtest(result)
    return result


_OPTIONS = [
    click.option("--data", "data_paths", multiple=True, type=click.Path(path_type=Path),
                 help="CSV or Parquet file of OHLCV bars; repeat for several instruments (default: bundled sample)."),
    click.option("--strategy", "strategy_ref", default="sma_cross", show_default=True,
                 help="Registered strategy name, or path/to/file.py:ClassName."),
    click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable."),
    click.option("--cash", type=float, default=None, help="Initial cash (default: setting initial_cash)."),
    click.option("--commission", type=float, default=None,
                 help="Commission as a fraction of traded value, e.g. 0.002 (default: setting commission)."),
    click.option("--spread", type=float, default=0.0, show_default=True,
                 help="Bid-ask spread as a fraction of price, paid once per round trip."),
    click.option("--slippage-bps", type=float, default=0.0, show_default=True,
                 help="Adverse slippage on market and stop fills, in basis points."),
    click.option("--fill-on", type=click.Choice(["next_open", "close"]), default="next_open", show_default=True,
                 help="Fill market orders at the next bar's open or at this bar's close."),
    click.option("--lot-size", type=float, default=1.0, show_default=True,
                 help="Relative orders are floored to whole lots (1e-8 for crypto, say)."),
    click.option("--model", default=None, help="Registered model for strategies that use ML (its champion)."),
    click.option("--news", type=click.Path(path_type=Path), default=None,
                 help="CSV of news (time, instrument, text) for the sentiment factor."),
    click.option("--no-store", is_flag=True, help="Do not write the run to the database."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout."),
]


def _with_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


@click.command("backtest")
@_with_options
@click.pass_context
def backtest(ctx: click.Context, data_paths: tuple[Path, ...], strategy_ref: str, params: tuple[str, ...],
             cash: float | None, commission: float | None, spread: float, slippage_bps: float, fill_on: str,
             lot_size: float, model: str | None, news: Path | None, no_store: bool, as_json: bool) -> None:
    """Backtest a strategy over historical bars and print its statistics.

    \b
    Example:
      alphaloop backtest --data GOOG.csv --strategy sma_cross --param fast=10 --param slow=20 \\
                         --cash 10000 --commission 0.002
    """
    from alphaloop.cli.main import settings_from

    settings = settings_from(ctx)
    result = run_and_store(settings, list(data_paths), strategy_ref, parse_params(params),
                           cash=settings.initial_cash if cash is None else cash,
                           commission=settings.commission if commission is None else commission,
                           spread=spread, slippage_bps=slippage_bps, fill_on=fill_on, lot_size=lot_size,
                           store=not no_store, progress=not as_json, model=model, news=news)
    if as_json:
        emit_json(result_json(result))
    else:
        print_result(result)


@click.command("demo")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Stop the replay after this many bars.")
@click.pass_context
def demo(ctx: click.Context, bars: int | None) -> None:
    """The main job on embedded defaults: train and register a model if none is registered yet, then run
    the live pipeline (replay of the bundled samples with their headlines -> patterns -> ml_multifactor
    with the ONNX model and sentiment -> paper broker) in one process, stored in SQLite."""
    from alphaloop.cli.main import settings_from
    from alphaloop.cli.run_cmd import latest_model, run
    from alphaloop.data import sample_paths

    settings = settings_from(ctx)
    settings.ensure_dirs()
    click.echo(f"alphaloop demo: home {settings.home}, database {settings.database_url}")
    model = latest_model(settings)
    if model is None:
        from alphaloop.cli.ml_cmd import train

        click.echo(f"\n== no model registered yet: training one on {sample_paths()[0].name}")
        ctx.invoke(train, data_path=sample_paths()[0], model="lightgbm", task="regression", horizon=5, folds=5,
                   name="demo-lightgbm", promote=True, seed=0, as_json=False)
        model = "demo-lightgbm"
    click.echo(f"\n== live pipeline on the bundled samples with model {model}")
    ctx.invoke(run, data_paths=(), synthetic=False, bars=bars, speed=0.0, instruments="", strategy_ref="ml_multifactor",
               params=(), model=model, news=None, cash=None, commission=None, quiet=False, as_json=False)


COMMANDS = [backtest, demo]
