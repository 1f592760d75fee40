"""``alphaloop runs`` (stored backtests) and ``alphaloop strategies`` (what can be run)."""

from __future__ import annotations

import click

from alphaloop.cli.output import emit_json, table


@click.group("runs")
def runs_group() -> None:
    """Stored backtest runs."""


@runs_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The most recent runs, newest first."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import Store

    with Store.from_settings(settings_from(ctx)) as db:
        runs = db.list_runs(limit)
    if as_json:
        emit_json({"runs": [{"run_id": r.run_id, "strategy": r.spec.to_dict(), "instruments": r.instruments,
                             "return_pct": r.return_pct, "sharpe": r.sharpe, "n_trades": r.n_trades,
                             "created_at": r.created_at} for r in runs]})
        return
    click.echo(table([(r.run_id, r.spec.name, ",".join(r.instruments), r.n_bars, r.return_pct, r.sharpe,
                       r.n_trades, r.created_at.strftime("%Y-%m-%d %H:%M")) for r in runs],
                     ("run", "strategy", "instruments", "bars", "return %", "sharpe", "trades", "created")))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show_run(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """One stored run: statistics (and trades with --json)."""
    from alphaloop.cli.backtest_cmd import print_result, result_json
    from alphaloop.cli.main import settings_from
    from alphaloop.store import Store

    with Store.from_settings(settings_from(ctx)) as db:
        result = db.get_run(run_id)
    if as_json:
        emit_json(result_json(result))
    else:
        print_result(result)


@click.command("strategies")
def strategies() -> None:
    """List the registered strategies and their default parameters."""
    from alphaloop.strategy.registry import strategy_class, strategy_names

    click.echo(table([(n, strategy_class(n).params) for n in strategy_names()], ("strategy", "parameters")))


COMMANDS = [runs_group, strategies]
