"""``alphaloop run`` (the live pipeline, embedded) and ``alphaloop explain`` (why an order exists)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, fmt, table


def latest_model(settings: Any) -> str | None:
    """The most recently registered model, if any (what `run` uses without --model)."""
    from alphaloop.store import SqlModelRepository, Store

    with Store.from_settings(settings) as store:
        repo = SqlModelRepository(store)
        records = [repo.latest_version(n) for n in repo.list_models()]
    records = [r for r in records if r is not None]
    if not records:
        return None
    return max(records, key=lambda r: (r.created_at or 0, r.name)).name


def _print_decision(d: Any) -> None:
    factors = " ".join(f"{f.name}={'-' if f.missing else format(f.value, '+.2f')}" for f in d.factors
                       if f.name != "volatility")
    order = f" -> {d.action} {abs(d.order_size):g}" if d.order_size else f" hold ({d.reason})"
    click.echo(f"{fmt_time(d.time_ns)}  {d.instrument:<10} score {d.score:+.3f}  {factors}{order}")


def fmt_time(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%d %H:%M")


def run_live(settings: Any, *, data_paths: list[Path], synthetic: bool, bars: int | None, speed: float,
             instruments: list[str], strategy_ref: str, params: dict[str, Any], model: str | None,
             news: Path | None, cash: float, commission: float, quiet: bool) -> tuple[Any, dict[str, Any]]:
    from alphaloop.cli.wiring import PredictionLogger, build_services
    from alphaloop.data import load_bars, sample_news_path, sample_paths
    from alphaloop.execution import BrokerConfig, Commission
    from alphaloop.live import EmbeddedRunner, MarketDataReplay
    from alphaloop.store import LiveRepository, SqlModelRepository, Store
    from alphaloop.strategy import load_strategy

    strategy = load_strategy(strategy_ref, params)
    if synthetic:
        source: Any = MarketDataReplay.synthetic(seed=7, instrument=(instruments or ["SYNTH"])[0], speed=speed)
    else:
        frames = {}
        for path in data_paths or sample_paths():
            df = load_bars(path)
            frames[df.attrs["instrument"]] = df
        if instruments:
            unknown = sorted(set(instruments) - set(frames))
            if unknown:
                raise click.BadParameter(f"unknown instrument(s) {', '.join(unknown)}; in the data: "
                                         f"{', '.join(frames)}", param_hint="--instruments")
            frames = {k: v for k, v in frames.items() if k in instruments}
        source = MarketDataReplay(frames, speed=speed)
    if news is None and not data_paths and not synthetic:
        news = sample_news_path()  # the bundled samples come with headlines
    services, info = build_services(settings, model, news, live=True)
    config = BrokerConfig(initial_cash=cash, commission=Commission(rate=commission))
    settings.ensure_dirs()
    with Store.from_settings(settings) as store:
        recorder: Any = LiveRepository(store)
        if info.get("model"):
            recorder = PredictionLogger(recorder, SqlModelRepository(store), int(info["horizon"]))
        runner = EmbeddedRunner(strategy, source, config, services=services, recorder=recorder,
                                on_decision=None if quiet else _print_decision)
        try:
            summary = runner.run(max_bars=bars)
        finally:
            services.close()
    return summary, info


@click.command("run")
@click.option("--data", "data_paths", multiple=True, type=click.Path(path_type=Path),
              help="Bars to replay; repeat for several instruments (default: the bundled samples).")
@click.option("--synthetic", is_flag=True, help="An endless synthetic stream instead of files (stop with --bars or Ctrl-C).")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Stop after this many bars (timeline steps).")
@click.option("--speed", type=float, default=0.0, show_default=True, help="Bars per second; 0 = as fast as possible.")
@click.option("--instruments", default="", help="Comma-separated instruments to trade (default: all in the data).")
@click.option("--strategy", "strategy_ref", default="ml_multifactor", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--model", default=None, help="Registered model to ask (default: the latest registered, if any).")
@click.option("--news", type=click.Path(path_type=Path), default=None, help="CSV of news (time, instrument, text).")
@click.option("--cash", type=float, default=None, help="Initial cash (default: setting initial_cash).")
@click.option("--commission", type=float, default=None, help="Commission rate (default: setting commission).")
@click.option("--quiet", is_flag=True, help="Print only the summary, not each decision.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object (implies --quiet).")
@click.pass_context
def run(ctx: click.Context, data_paths: tuple[Path, ...], synthetic: bool, bars: int | None, speed: float,
        instruments: str, strategy_ref: str, params: tuple[str, ...], model: str | None, news: Path | None,
        cash: float | None, commission: float | None, quiet: bool, as_json: bool) -> None:
    """Run the live pipeline in one process: market data replay -> pattern engine -> strategy engine
    (with the ML model and sentiment) -> paper broker, joined by the in-memory bus, stored in the
    project database. Prints decisions as they happen and a summary at the end (or on Ctrl-C)."""
    from alphaloop.cli.backtest_cmd import parse_params
    from alphaloop.cli.main import settings_from

    settings = settings_from(ctx)
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations are not news to an operator
    parsed = parse_params(params)
    if strategy_ref == "ml_multifactor":
        parsed.setdefault("threshold", str(settings.min_signal_threshold))
        parsed.setdefault("max_position_size", str(settings.max_position_size))
    model = model or latest_model(settings)
    summary, info = run_live(settings, data_paths=list(data_paths), synthetic=synthetic, bars=bars, speed=speed,
                             instruments=[s.strip() for s in instruments.split(",") if s.strip()],
                             strategy_ref=strategy_ref, params=parsed, model=model, news=news,
                             cash=settings.initial_cash if cash is None else cash,
                             commission=settings.commission if commission is None else commission,
                             quiet=quiet or as_json)
    doc = {**summary.to_dict(), "model": info.get("model"), "model_version": info.get("version"),
           "news_items": info.get("news_items", 0)}
    if as_json:
        emit_json(doc)
        return
    click.echo("")
    rows = [("run", doc["run_id"]), ("ended", doc["ended"]), ("instruments", ", ".join(doc["instruments"])),
            ("model", f"{doc['model']} v{doc['model_version']}" if doc["model"] else "none (ML factor missing)"),
            ("bars", doc["bars"]), ("signals", doc["signals"]), ("decisions", doc["decisions"]),
            ("orders", doc["orders"]), ("fills", doc["fills"]), ("orders rejected", doc["orders_rejected"]),
            ("risk rejections", ", ".join(f"{k} {v}" for k, v in doc["rejections"].items()) or "-"),
            ("realized P&L", doc["realized_pnl"]), ("unrealized P&L", doc["unrealized_pnl"]),
            ("final equity", doc["final_equity"]),
            ("positions", ", ".join(f"{k} {v:g}" for k, v in doc["positions"].items() if v) or "flat"),
            ("decision latency p50 / p99 [us]", f"{fmt(doc['latency_p50_us'])} / {fmt(doc['latency_p99_us'])}"),
            ("inference paths", ", ".join(f"{k} {v}" for k, v in doc["inference_paths"].items()) or "-"),
            ("errors", ", ".join(f"{k} {v}" for k, v in doc["errors"].items()) or "none")]
    click.echo(table(rows))
    click.echo(f"\nexplain any order: alphaloop explain {doc['run_id']}:<order number>")


@click.command("explain")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def explain(ctx: click.Context, order_id: str, as_json: bool) -> None:
    """The chain behind an order of a live run: signal, factors, score, decision, order, fills."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import LiveRepository, Store

    with Store.from_settings(settings_from(ctx)) as store:
        chain = LiveRepository(store).explain(order_id)
    if as_json:
        emit_json(chain)
        return
    d, o = chain["decision"], chain["order"]
    click.echo(f"order {o['id']}: {o['instrument']} size {fmt(o.get('size'))} ({o['type']}, {o['tif']}) "
               f"status {o['status']}")
    if d is None:
        click.echo("  not made by a decision (a stop-loss/take-profit of a trade, or an end-of-data close)")
    else:
        sig = d.get("signal")
        click.echo(f"  bar {d['bar']} at {d['time']}: "
                   + (f"signal {sig['pattern']} {sig['direction']} strength {sig['strength']:.2f}" if sig else "bar decision"))
        click.echo(f"  decision {d['id']}: score {d['score']:+.3f} vs threshold {d['threshold']} -> {d['action']} "
                   f"({d['reason']})")
        click.echo(f"  model {d.get('model') or '-'} v{d.get('model_version') or '-'} via {d.get('inference_path') or '-'}; "
                   f"sentiment {d.get('sentiment_source') or '-'}")
        click.echo(table([(f["name"], "missing" if f["missing"] else f["value"], f["weight"], f["effective_weight"],
                           f.get("reason") or "") for f in d["factors"]],
                         ("factor", "value", "weight", "effective", "why missing")))
    for f in chain["fills"]:
        click.echo(f"  fill bar {f['bar']} at {f['time']}: {fmt(f['size'])} @ {fmt(f['price'])} "
                   f"commission {fmt(f['commission'])}")
    if chain.get("realized_pnl") is not None:
        click.echo(f"  realised P&L so far {fmt(chain['realized_pnl'])}, open {fmt(chain.get('open_size'))}")


COMMANDS = [run, explain]
