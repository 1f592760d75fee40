"""``alphaloop discover`` (the six-step discovery pipeline), ``alphaloop discovery`` (evaluate, compare,
rank, deactivate strategies) and ``alphaloop ml status``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, fmt, table


def _load_data(paths: tuple[Path, ...]) -> dict[str, Any]:
    from alphaloop.core.errors import DataError
    from alphaloop.data import load_bars

    data: dict[str, Any] = {}
    for p in paths:
        bars = load_bars(p)
        name = str(bars.attrs.get("instrument") or Path(p).stem)
        if name in data:
            raise DataError(f"two --data files hold instrument {name!r}", source=str(p))
        data[name] = bars
    return data


def _executor(kind: str, scheduler: str | None, workers: int | None) -> Any:
    from alphaloop.discovery.executors import make_executor

    if scheduler and kind != "dask":
        raise click.UsageError("--scheduler goes with --executor dask")
    if kind == "local":
        return make_executor("local", max_workers=workers)
    if kind == "dask":
        return make_executor("dask", address=scheduler, n_workers=workers or 2)
    return make_executor("serial")


class _Progress:
    """A tqdm bar on stderr (a terminal or not: --json keeps stdout for the one JSON object)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="cand", file=sys.stderr, leave=False, mininterval=0.2,
                            disable=not sys.stderr.isatty())
        self.done: dict[str, int] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        if step in ("retrain", "generate"):
            self.done[step] = done
            self.bar.n = max(self.done.values())
        self.bar.set_description(step)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("discover")
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Bars file (CSV/Parquet); repeat for several instruments.")
@click.option("--family", "families", multiple=True, default=("sma_cross",), show_default=True,
              help="Strategy family to search: sma_cross, ml_multifactor, pattern_follow; repeatable.")
@click.option("--trials", type=click.IntRange(min=1), default=40, show_default=True,
              help="Candidates backtested per family (the bootstrap batch included).")
@click.option("--batch", type=click.IntRange(min=1), default=10, show_default=True, help="Candidates per round.")
@click.option("--prescreen", type=click.IntRange(min=1), default=4, show_default=True,
              help="Proposals the evaluation model screens per kept candidate.")
@click.option("--bootstrap", type=click.IntRange(min=1), default=20, show_default=True,
              help="Candidates backtested before the first training when no evaluation model exists.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampler", type=click.Choice(["tpe", "nsga2"]), default="tpe", show_default=True)
@click.option("--executor", "executor_kind", type=click.Choice(["serial", "local", "dask"]), default="local",
              show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786); without it --executor dask starts a LocalCluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (local, LocalCluster).")
@click.option("--windows", type=click.IntRange(min=1), default=4, show_default=True,
              help="Walk-forward test windows.")
@click.option("--activate-above", type=click.FloatRange(0, 1), default=0.65, show_default=True)
@click.option("--deactivate-below", type=click.FloatRange(0, 1), default=0.50, show_default=True)
@click.option("--max-activate", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--study", "study_prefix", default="discover", show_default=True,
              help="Study name prefix; the same name (and seed) resumes a study.")
@click.option("--ml-url", default=None, metavar="grpc://HOST:PORT",
              help="Run against the ML service at this gRPC address (its feedback, evaluation model and "
                   "retraining); default: the in-process feedback loop on this project's database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
@click.pass_context
def discover(ctx: click.Context, data_paths: tuple[Path, ...], families: tuple[str, ...], trials: int, batch: int,
             prescreen: int, bootstrap: int, seed: int, sampler: str, executor_kind: str, scheduler: str | None,
             workers: int | None, windows: int, activate_above: float, deactivate_below: float, max_activate: int,
             study_prefix: str, ml_url: str | None, as_json: bool) -> None:
    """Discover strategies: feedback -> retrain -> generate -> evaluate/activate -> deactivate -> rank.

    With --ml-url the ML side (feedback, retraining, ml_confidence) is the ML service over gRPC; the
    strategy book and the Optuna studies stay in this project's database."""
    from alphaloop.cli.main import settings_from
    from alphaloop.discovery.evaluator import EvaluationSettings
    from alphaloop.discovery.generation import optuna_storage_url
    from alphaloop.discovery.pipeline import DiscoveryConfig, DiscoveryPipeline

    data = _load_data(data_paths)
    evaluation = EvaluationSettings(n_windows=windows, activate_above=activate_above,
                                    deactivate_below=deactivate_below)
    config = DiscoveryConfig(families=tuple(dict.fromkeys(families)), trials=trials, batch=batch,
                             prescreen=prescreen, bootstrap=bootstrap, seed=seed, sampler=sampler,
                             study_prefix=study_prefix, evaluation=evaluation, max_activate=max_activate,
                             storage=optuna_storage_url(settings_from(ctx).database_url))
    progress = _Progress(trials * len(config.families), enabled=True)
    try:
        with _ml_side(ctx, ml_url) as (ml, store), _executor(executor_kind, scheduler, workers) as ex:
            pipeline = DiscoveryPipeline(data, ex, ml, store, config, executor_name=executor_kind)
            report = pipeline.run(progress=progress, feedback_source=lambda ml: _stored_feedback(store, ml))
    finally:
        progress.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        print_report(report.to_dict())


@contextmanager
def _ml_side(ctx: click.Context, ml_url: str | None) -> Iterator[tuple[Any, Any]]:
    """(the pipeline's ML side, the project store): in-process, or the ML service at ``ml_url``.

    Not taken from ONNX_RUNNER_URL: that names a prediction runner (maybe HTTP, maybe one without a
    discovery loop); sending this project's feedback elsewhere has to be asked for explicitly."""
    from alphaloop.cli.feedback_cmd import open_loop
    from alphaloop.cli.main import settings_from
    from alphaloop.discovery.pipeline import InProcessML

    if ml_url is None:
        with open_loop(ctx) as (loop, store):
            yield InProcessML(loop), store
        return
    from alphaloop.services.ml.remote_discovery import RemoteML
    from alphaloop.store import Store

    settings = settings_from(ctx)
    settings.ensure_dirs()
    with RemoteML(ml_url) as ml, Store.from_settings(settings) as store:
        ml.check_reachable()
        yield ml, store


def _stored_feedback(store: Any, ml: Any) -> dict[str, int]:
    """Step 1: stored backtests not yet fed back (``alphaloop backtest`` runs) go to the ML side."""
    from alphaloop.cli.feedback_cmd import submit_runs

    r = submit_runs(store, ml, batch_size=50)
    return {"runs": r.runs, "submitted": len(r.submitted), "accepted": len(r.accepted),
            "skipped": len(r.skipped), "marked_processed": r.marked_processed}


def print_report(d: dict[str, Any]) -> None:
    click.echo(f"Discovery ({d['executor']} executor, seed {d['seed']}): {d['candidates_tried']} candidates "
               f"backtested of {d['candidates_proposed']} proposed, {fmt(d['candidates_per_minute'])} per minute")
    click.echo("")
    click.echo(table([(s["name"], f"{s['seconds']:.2f}", ", ".join(f"{k}={v}" for k, v in s["counts"].items()
                                                                  if k != "jobs"))
                      for s in d["steps"]], ("step", "seconds", "counts")))
    jobs = [j for s in d["steps"] for j in s["counts"].get("jobs", [])]
    for j in jobs:
        click.echo(f"  training job: {j['status']}: {j['reason']}")
    st = d["study"]
    click.echo("")
    click.echo(f"Study: {st['n_trials']} backtested trials; best candidate's DSR {fmt(st['dsr'])}; "
               f"PBO {fmt(st['pbo'])}")
    wf = st.get("walk_forward_selection")
    if wf:
        click.echo(f"Walk-forward selection on {wf['instrument']}: out-of-sample Sharpe {fmt(wf['oos_sharpe'])}, "
                   f"DSR {fmt(wf['dsr'])}, backtest score {fmt(wf['backtest_score'])}")
    if d["failed"]:
        click.echo("")
        click.echo(f"{len(d['failed'])} candidate backtest(s) failed, e.g. {_spec_text(d['failed'][0]['spec'])}: "
                   f"{d['failed'][0]['error']}")
    for title, rows in (("Activated", d["activated"]), ("Retired", d["retired"])):
        click.echo("")
        click.echo(f"{title}: {len(rows) or 'none'}")
        if rows:
            click.echo(_strategy_table(rows))
    click.echo("")
    click.echo("Strategies evaluated (best first):")
    click.echo(_strategy_table(d["strategies"][:15]))
    if len(d["strategies"]) > 15:
        click.echo(f"... and {len(d['strategies']) - 15} more (--json lists all)")
    click.echo("")
    click.echo("Ranking:")
    click.echo(table([(r["rank"], _spec_text(r["spec"]), r["status"], r["composite_score"])
                      for r in d["ranking"][:15]], ("#", "strategy", "status", "composite")))


def _spec_text(spec: dict[str, Any]) -> str:
    return f"{spec['name']}(" + ", ".join(f"{k}={fmt(v)}" for k, v in spec["params"].items()) + ")"


def _strategy_table(rows: list[dict[str, Any]]) -> str:
    return table([(_spec_text(r["spec"]), r["status"], r["ml_confidence"], r["backtest_score"], r["composite_score"],
                   r.get("oos_sharpe"), r.get("dsr")) for r in rows],
                 ("strategy", "status", "ml_conf", "backtest", "composite", "oos_sharpe", "dsr"))


# ---------------------------------------------------------------------- discovery group


@click.group("discovery")
def discovery_group() -> None:
    """Evaluate, compare, rank and deactivate strategies."""


def _parse_spec(text: str) -> Any:
    """``name`` or ``name:k=v,k=v`` -> StrategySpec (values typed by the strategy's defaults)."""
    from alphaloop.core.strategy_spec import StrategySpec
    from alphaloop.strategy import load_strategy

    name, _, rest = text.partition(":")
    if name.endswith(".py"):  # path/to/file.py:Class[:k=v,...]
        cls, _, rest = rest.partition(":")
        name = f"{name}:{cls}"
    params: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"expected NAME[:k=v,...], got {text!r}", param_hint="--strategy")
        params[k.strip()] = v.strip()
    strategy = load_strategy(name, params)  # validates, converts the values' types
    return StrategySpec(name, dict(strategy.parameters))


@discovery_group.command("evaluate")
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(path_type=Path))
@click.option("--strategy", "strategies", multiple=True, required=True, metavar="NAME[:k=v,...]",
              help="Strategy to evaluate; repeat to compare several side by side.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials to deflate the DSR for (default: the strategies compared).")
@click.option("--windows", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def evaluate_cmd(ctx: click.Context, data_paths: tuple[Path, ...], strategies: tuple[str, ...], trials: int | None,
                 windows: int, as_json: bool) -> None:
    """Out-of-sample (walk-forward) scores of one or several strategies, side by side; ml_confidence from
    the evaluation model when one is trained."""
    from alphaloop.cli.feedback_cmd import open_loop
    from alphaloop.discovery.evaluator import EvaluationSettings, Evaluator
    from alphaloop.discovery.executors import SerialExecutor
    from alphaloop.discovery.regime import regime_features

    data = _load_data(data_paths)
    specs = [_parse_spec(s) for s in strategies]
    ev = Evaluator(data, SerialExecutor(), EvaluationSettings(n_windows=windows))
    with open_loop(ctx) as (loop, _):
        model = loop.evaluator()
        conf: list[float | None] = [None] * len(specs)
        if model is not None:
            regimes = [regime_features(d.bars.iloc[d.windows[0].test_start:d.windows[-1].test_end])
                       for d in ev.datasets.values()]
            conf = [float(sum(model.predict([s], r)[0] for r in regimes) / len(regimes)) if model.covers(s) else None
                    for s in specs]
    results = ev.evaluate(specs, n_trials=trials, ml_confidence=conf)
    rows = [r.to_dict() for r in results]
    if as_json:
        emit_json({"strategies": rows, "n_trials": trials or len(specs),
                   "pbo": ev.pbo(specs) if len(specs) > 1 else None})
        return
    click.echo(table([(_spec_text(r["spec"]), r["ml_confidence"], r["backtest_score"], r["composite_score"],
                       r["oos_sharpe"], r["oos_max_drawdown"], r["dsr"], r["n_trades"], r["error"] or "")
                      for r in rows],
                     ("strategy", "ml_conf", "backtest", "composite", "oos_sharpe", "max_dd", "dsr", "trades", "error")))


@discovery_group.command("rank")
@click.option("--status", type=click.Choice(["active", "inactive", "candidate"]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rank_cmd(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Strategies by their latest composite score (top performers first)."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import Store

    with Store.from_settings(settings_from(ctx)) as store:
        rows = store.strategy_scores(status)[:limit]
    if as_json:
        emit_json({"strategies": [{**r, "spec": r["spec"].to_dict()} for r in rows]})
        return
    click.echo(table([(i + 1, r["id"], _spec_text(r["spec"].to_dict()), r["status"], r["ml_confidence"],
                       r["backtest_score"], r["composite_score"]) for i, r in enumerate(rows)],
                     ("#", "id", "strategy", "status", "ml_conf", "backtest", "composite")))


@discovery_group.command("deactivate")
@click.argument("strategy_ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why (kept in the strategy's history).")
@click.pass_context
def deactivate_cmd(ctx: click.Context, strategy_ids: tuple[str, ...], reason: str) -> None:
    """Deactivate strategies by id, all or none, each with an audit row."""
    from alphaloop.cli.main import settings_from
    from alphaloop.discovery.pipeline import StatusChange
    from alphaloop.store import Store

    with Store.from_settings(settings_from(ctx)) as store:
        n = store.apply_status_changes([StatusChange(i, "inactive", f"manual: {reason}", None, None, None)
                                        for i in strategy_ids])
    click.echo(f"{n} strateg{'y' if n == 1 else 'ies'} deactivated")


@discovery_group.command("history")
@click.argument("strategy_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_cmd(ctx: click.Context, strategy_id: str, as_json: bool) -> None:
    """A strategy's status changes: from, to, when and why."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import Store

    with Store.from_settings(settings_from(ctx)) as store:
        events = store.strategy_events(strategy_id)
    if as_json:
        emit_json({"events": [{"from": e.from_status, "to": e.to_status, "reason": e.reason, "at": e.created_at}
                              for e in events]})
        return
    click.echo(table([(e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.from_status, e.to_status, e.reason)
                      for e in events], ("at", "from", "to", "reason")))


# ---------------------------------------------------------------------- ml status


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ml_status(ctx: click.Context, as_json: bool) -> None:
    """The ML side's health, configuration, models and aliases, cache, evaluation model and feedback."""
    from alphaloop.cli.feedback_cmd import open_loop
    from alphaloop.cli.main import settings_from

    settings = settings_from(ctx)
    info: dict[str, Any] = {"mode": "in-process", "configuration": {
        "database": settings.database_url.split("@")[-1], "models_dir": str(settings.models_dir),
        "cache_dir": str(settings.cache_dir)}}
    with open_loop(ctx) as (loop, _):
        models = loop.registry.list()
        info["models"] = [{"name": m.name, "latest_version": m.latest_version, "n_versions": m.n_versions,
                           "aliases": m.aliases} for m in models]
        ev = loop.evaluator()
        info["evaluation_model"] = None if ev is None else {
            "name": loop.model_name, "version": ev.version, "families": list(ev.families),
            "metrics": ev.metrics}
        due, why = loop.due()
        info["feedback"] = {"records": loop.repo.count_feedback(), "new_since_training": loop.repo.count_new(),
                            "retrain_due": due, "why": why,
                            "policy": {"min_new_records": loop.policy.min_new_records,
                                       "every_hours": loop.policy.every_hours}}
        info["jobs"] = [j.to_dict() for j in loop.jobs(5)]
    info["cache"] = _cache_stats(settings.cache_dir)
    info["health"] = "ok"
    if as_json:
        emit_json(info)
        return
    click.echo(f"ML: {info['mode']}, health {info['health']}")
    click.echo(table(list(info["configuration"].items()), ("setting", "value")))
    click.echo("")
    click.echo(table([(m["name"], m["latest_version"], m["n_versions"],
                       ", ".join(f"{a}={v}" for a, v in m["aliases"].items())) for m in info["models"]],
                     ("model", "latest", "versions", "aliases")) or "no models registered")
    e = info["evaluation_model"]
    click.echo("")
    click.echo("evaluation model: " + ("none trained yet" if e is None else
                                       f"{e['name']} v{e['version']} ({', '.join(e['families'])}), "
                                       f"held-out MAE {fmt(e['metrics'].get('mae'))}"))
    f = info["feedback"]
    click.echo(f"feedback: {f['records']} records, {f['new_since_training']} new; retrain due: {f['retrain_due']} "
               f"({f['why']})")
    c = info["cache"]
    click.echo(f"cache: {c['files']} files, {c['bytes']} bytes in {info['configuration']['cache_dir']} "
               "(prediction caches live in the serving process; `alphaloop serve` reports theirs)")


def _cache_stats(folder: Path) -> dict[str, int]:
    files = [p for p in Path(folder).rglob("*") if p.is_file()] if Path(folder).is_dir() else []
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


COMMANDS = [discover, discovery_group]
ML_COMMANDS = [ml_status]  # attached under `alphaloop ml`
