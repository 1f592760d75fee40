"""``alphaloop ml``: train, register, inspect, promote and judge models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, table


@contextmanager
def open_registry(ctx: click.Context) -> Iterator[tuple[Any, Any]]:
    """The model registry (files under models_dir, rows in the project database) and its repository."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import SqlModelRepository, Store

    settings = settings_from(ctx)
    settings.ensure_dirs()
    with Store.from_settings(settings) as store:
        repo = SqlModelRepository(store)
        yield repo.registry(settings.models_dir), repo


def default_model_name(instrument: str, model: str, task: str, horizon: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in instrument).strip("._-") or "model"
    return f"{safe}-{model}-{task[:3]}-h{horizon}"


@click.group("ml")
def ml_group() -> None:
    """Models: train to ONNX, registry, predictions and their accuracy."""


@ml_group.command("train")
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="CSV or Parquet bars.")
@click.option("--model", type=click.Choice(["lightgbm", "linear"]), default="lightgbm", show_default=True)
@click.option("--task", type=click.Choice(["regression", "classification"]), default="regression", show_default=True)
@click.option("--horizon", type=click.IntRange(min=1), default=5, show_default=True, help="Bars ahead to predict.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Walk-forward folds.")
@click.option("--name", default=None, help="Registry name (default: INSTRUMENT-MODEL-TASK-hHORIZON).")
@click.option("--promote/--no-promote", default=None,
              help="Make this version the champion (default: only if the model has none yet).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def train(ctx: click.Context, data_path: Path, model: str, task: str, horizon: int, folds: int,
          name: str | None, promote: bool | None, seed: int, as_json: bool) -> None:
    """Train with walk-forward validation, export to ONNX (checked against the native model),
    register the version and print its validation metrics."""
    from alphaloop.data import load_bars
    from alphaloop.ml.export import export_model
    from alphaloop.ml.registry import CHAMPION
    from alphaloop.ml.training import train_model

    df = load_bars(data_path)
    instrument = df.attrs["instrument"]
    result = train_model(df, model=model, task=task, horizon=horizon, n_folds=folds, seed=seed, instrument=instrument)
    name = name or default_model_name(instrument, model, task, horizon)
    artifact = export_model(result, name)
    with open_registry(ctx) as (registry, _):
        registered = registry.register(artifact)
        has_champion = registry.backend.get_alias(name, CHAMPION) is not None
        if promote or (promote is None and not has_champion):
            registry.promote(name, registered.version, CHAMPION)
        aliases = registry.backend.aliases(name)
    summary = {"name": name, "version": registered.version, "sha256": registered.sha256, "task": task,
               "model": model, "horizon": horizon, "instrument": instrument, "n_samples": result.n_samples,
               "data_start": result.data_start, "data_end": result.data_end,
               "feature_set": f"{result.schema.name}/v{result.schema.version}", "aliases": aliases,
               "metrics": {k: v for k, v in result.metrics.items() if not isinstance(v, list | dict)}}
    if as_json:
        emit_json(summary)
        return
    rows = [(k, summary[k]) for k in ("name", "version", "model", "task", "horizon", "instrument", "n_samples",
                                       "data_start", "data_end", "feature_set")]
    rows.append(("aliases", ", ".join(f"{a}={v}" for a, v in aliases.items()) or "-"))
    rows += [(f"validation {k}", v) for k, v in summary["metrics"].items()]
    click.echo(table(rows))


@ml_group.group("models")
def models_group() -> None:
    """The model registry."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Every registered model: newest version, number of versions, aliases."""
    with open_registry(ctx) as (registry, _):
        infos = registry.list()
    if as_json:
        emit_json({"models": [{"name": i.name, "latest_version": i.latest_version, "n_versions": i.n_versions,
                               "aliases": i.aliases} for i in infos]})
        return
    click.echo(table([(i.name, i.latest_version, i.n_versions, ", ".join(f"{a}={v}" for a, v in i.aliases.items()))
                      for i in infos], ("model", "latest", "versions", "aliases")))


@models_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every version of a model: hash, feature schema, data range, metrics."""
    with open_registry(ctx) as (registry, _):
        details = registry.show(name)
    versions = [{"version": v.version, "sha256": v.sha256, "task": v.task, "horizon": v.horizon,
                 "feature_set": f"{v.schema.name}/v{v.schema.version}", "n_features": len(v.schema.columns),
                 "data_start": v.data_start, "data_end": v.data_end, "created_at": v.created_at,
                 "metrics": (v.metrics.get("overall") or v.metrics)} for v in details.versions]
    if as_json:
        emit_json({"name": details.name, "aliases": details.aliases, "versions": versions})
        return
    click.echo(f"{details.name}  aliases: {', '.join(f'{a}={v}' for a, v in details.aliases.items()) or '-'}")
    keys = ("directional_accuracy", "auc", "rmse", "log_loss")
    click.echo(table([(v["version"], v["task"], v["horizon"], v["feature_set"], v["sha256"][:12],
                       *(v["metrics"].get(k) for k in keys)) for v in versions],
                     ("version", "task", "horizon", "features", "sha256", *keys)))


@models_group.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="champion", show_default=True, help="champion, challenger or any alias.")
@click.pass_context
def models_promote(ctx: click.Context, name: str, version: int, alias: str) -> None:
    """Point an alias at a version (cached predictions of the previous one are invalidated by the runtime)."""
    with open_registry(ctx) as (registry, _):
        previous = registry.promote(name, version, alias)
    click.echo(f"{name}: {alias} -> v{version}" + (f" (was v{previous})" if previous is not None else ""))


@ml_group.command("predict")
@click.option("--model", "name", required=True, help="Registered model name.")
@click.option("--version", type=int, default=None, help="Version (default: the alias, else the latest).")
@click.option("--alias", default="champion", show_default=True)
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="CSV or Parquet bars.")
@click.option("--last", "last_n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Predict for the last N bars.")
@click.option("--providers", default="tensorrt,cuda,cpu", show_default=True,
              help="Provider chain to try, in order; the one that answered is reported.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Store the predictions (for `alphaloop ml accuracy`).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def predict(ctx: click.Context, name: str, version: int | None, alias: str, data_path: Path, last_n: int,
            providers: str, record: bool, as_json: bool) -> None:
    """Load a registered model (hash checked), compute its features and predict the last bars."""
    from alphaloop.core.errors import DataError
    from alphaloop.data import load_bars
    from alphaloop.ml.features import features_for
    from alphaloop.ml.runtime import InferenceRuntime

    df = load_bars(data_path)
    instrument = df.attrs["instrument"]
    with open_registry(ctx) as (registry, repo):
        if version is None and registry.backend.get_alias(name, alias) is None:
            alias = None  # no such alias yet: the latest version
        artifact = registry.load(name, version=version, alias=alias if version is None else None)
        features = features_for(artifact.schema, df).iloc[-last_n:]
        if features.isna().any(axis=None):
            raise DataError(f"the last {last_n} bars include warm-up rows without complete features; "
                            f"use --last {int(features.notna().all(axis=1).sum())} or more data",
                            source=str(data_path))
        with InferenceRuntime(artifact, providers=tuple(p.strip() for p in providers.split(",") if p.strip())) as rt:
            batch = rt.predict_batch(features)
            report = rt.provider_report()
        preds = list(batch)
        if record:
            repo.record_predictions([{"prediction": p, "instrument": instrument, "time": t, "horizon": artifact.horizon}
                                     for p, t in zip(preds, features.index)])
    rows = [{"time": t, "value": p.value, "confidence": p.confidence, "path": str(p.path)}
            for p, t in zip(preds, features.index)]
    if as_json:
        emit_json({"model": artifact.name, "version": artifact.version, "task": artifact.task,
                   "horizon": artifact.horizon, "instrument": instrument, "providers": report.to_dict(),
                   "predictions": rows})
        return
    click.echo(f"{artifact.name} v{artifact.version} ({artifact.task}, horizon {artifact.horizon}) on {instrument}")
    click.echo(str(report))
    click.echo(table([(r["time"], r["value"], r["confidence"], r["path"]) for r in rows],
                     ("time", "value", "confidence", "path")))


@ml_group.command("accuracy")
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Bars of the instruments predicted (for the realised outcomes); repeatable.")
@click.option("--model", default=None, help="Only this model.")
@click.option("--by", "group", type=click.Choice(["model", "strategy"]), default="model", show_default=True,
              help="Per model version, or per strategy that asked (and model version).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def accuracy(ctx: click.Context, data_paths: tuple[Path, ...], model: str | None, group: str, as_json: bool) -> None:
    """Join recorded predictions with what happened next: hit rate, MAE and calibration per model version
    (or per strategy)."""
    from alphaloop.data import load_bars
    from alphaloop.ml.accuracy import accuracy_report

    bars = {}
    for p in data_paths:
        df = load_bars(p)
        bars[df.attrs["instrument"]] = df
    with open_registry(ctx) as (registry, repo):
        records = repo.prediction_records(model=model)
        tasks = {(r.name, r.version): r.task for n in {*records["model"]} for r in registry.show(n).versions}
    if records.empty:
        report = []
    else:
        records["task"] = [tasks.get((m, int(v)), "regression") for m, v in zip(records["model"], records["version"])]
        by = ("model", "version") if group == "model" else ("strategy", "model", "version")
        if group == "strategy":
            records["strategy"] = records["strategy"].fillna("(direct)")
        report = accuracy_report(records, bars, by=by).to_dict("records")
    if as_json:
        emit_json({"models": report})
        return
    if not report:
        click.echo("no recorded predictions")
        return
    cols = list(report[0])
    click.echo(table([[r[c] for c in cols] for r in report], cols))


COMMANDS = [ml_group]
