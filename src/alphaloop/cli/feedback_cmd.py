"""``alphaloop ml feedback``: send stored backtest results to the ML service, retrain, show jobs.

``submit`` turns unprocessed stored runs into feedback records (the run's spec, range, regime
features of its bars, metrics and backtest_score), sends them in batches to a feedback sink (the
in-process :class:`~alphaloop.discovery.retraining.FeedbackLoop` on the project database, or the ML
service over gRPC with ``--ml-url``), and marks a run processed only once the sink accepted its
record. Resubmitting is harmless: the sink deduplicates by record id (the run id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from alphaloop.cli.output import emit_json, table
from alphaloop.core.errors import ConfigError, DataError
from alphaloop.discovery.errors import DiscoveryError


@dataclass
class SubmitReport:
    """What ``submit_runs`` did: runs looked at, records sent and accepted, ids the sink refused, runs
    that could not become records (with why), and runs newly marked processed."""

    runs: int = 0
    submitted: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    marked_processed: int = 0
    batches: int = 0
    training_job: dict[str, Any] | None = None  # the in-process loop's job, when the records made one due

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "submitted": len(self.submitted), "accepted": len(self.accepted),
                "rejected": self.rejected, "skipped": [{"run_id": k, "reason": v} for k, v in self.skipped.items()],
                "marked_processed": self.marked_processed, "batches": self.batches,
                "training_job": self.training_job}


def _data_file(run: Any) -> Path:
    """The one bars file a run was made from, or a DataError saying why there is none to use."""
    source = (run.data_source or "").strip()
    if not source:
        raise DataError(f"run {run.run_id}: no data file was stored with it; feedback needs the bars the run "
                        "ran on (backtest with --data FILE)")
    paths = [p.strip() for p in source.split(", ") if p.strip()]
    if len(paths) != 1:
        raise DataError(f"run {run.run_id}: made from {len(paths)} data files ({source}); a feedback record "
                        "describes one instrument")
    path = Path(paths[0])
    if not path.is_file():
        raise DataError(f"run {run.run_id}: its data file is missing; feedback needs the run's bars",
                        source=str(path))
    return path


def build_records(store: Any, runs: Sequence[Any], *, load: Callable[[Path], Any] | None = None
                  ) -> tuple[list[Any], dict[str, str]]:
    """Feedback records for ``runs`` (RunSummary rows) and, for runs that cannot give one, the reason."""
    from alphaloop.data import load_bars
    from alphaloop.discovery.feedback import feedback_from_run

    load = load or load_bars
    cache: dict[Path, Any] = {}
    records, skipped = [], {}
    for run in runs:
        try:
            path = _data_file(run)
            if path not in cache:
                cache[path] = load(path)
            result = store.get_run(run.run_id)  # the equity curve, for the score when none is stored
            records.append(feedback_from_run(result, cache[path], backtest_score=run.backtest_score))
        except (DataError, DiscoveryError) as e:
            skipped[run.run_id] = str(e)
    return records, skipped


def submit_runs(store: Any, sink: Any, *, batch_size: int = 50, limit: int | None = None,
                load: Callable[[Path], Any] | None = None) -> SubmitReport:
    """Send the store's unprocessed runs to ``sink`` in batches; mark processed only the accepted ones.

    A batch the sink fails on raises (earlier batches stay marked, this and later ones do not).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    report = SubmitReport()
    runs = store.recent_unprocessed(limit=limit if limit is not None else 10**9)
    report.runs = len(runs)
    records, report.skipped = build_records(store, runs, load=load)
    for i in range(0, len(records), batch_size):
        batch = records[i:i + batch_size]
        ids = [r.id for r in batch]
        report.submitted += ids
        report.batches += 1
        answered = set(sink.submit_feedback(batch))
        accepted = [k for k in ids if k in answered]
        report.accepted += accepted
        report.rejected += [k for k in ids if k not in answered]
        report.marked_processed += store.mark_processed(accepted)
    return report


# ---------------------------------------------------------------------- wiring


@contextmanager
def open_loop(ctx: click.Context, *, min_new: int | None = None, every_hours: float | None = None,
              price_data: dict[str, Any] | None = None) -> Iterator[tuple[Any, Any]]:
    """The in-process feedback loop on the project database and model registry, and its store."""
    from alphaloop.cli.main import settings_from
    from alphaloop.discovery.retraining import FeedbackLoop, RetrainPolicy
    from alphaloop.store import SqlModelRepository, Store
    from alphaloop.store.feedback_repository import SqlFeedbackRepository

    settings = settings_from(ctx)
    settings.ensure_dirs()
    defaults = RetrainPolicy()
    policy = RetrainPolicy(min_new_records=defaults.min_new_records if min_new is None else min_new,
                           every_hours=defaults.every_hours if every_hours is None else every_hours)
    with Store.from_settings(settings) as store:
        registry = SqlModelRepository(store).registry(settings.models_dir)
        yield FeedbackLoop(SqlFeedbackRepository(store), registry, policy, price_data=price_data), store


def remote_sink(url: str) -> Any:
    """The ML service's gRPC client (``host:port`` or ``grpc://host:port``): it has ``submit_feedback``."""
    target = url.removeprefix("grpc://")
    if "://" in target:
        raise ConfigError(f"--ml-url {url!r}: feedback goes over gRPC; give host:port or grpc://host:port")
    try:
        from alphaloop.services.ml.client import MLGrpcClient
    except ImportError as e:
        raise ConfigError(f"--ml-url needs the ML service's gRPC client, which this installation lacks ({e}); "
                          "submit in-process instead (leave out --ml-url)") from None
    return MLGrpcClient(target, timeout_s=10.0)


@contextmanager
def _remote(url: str) -> Iterator[Any]:
    """The ML service's discovery side over gRPC (``grpc://host:port`` or ``host:port``)."""
    try:
        from alphaloop.services.ml.remote_discovery import RemoteML
    except ImportError as e:
        raise ConfigError(f"--ml-url needs the ML service's gRPC client, which this installation lacks ({e})") from None
    with RemoteML(url) as ml:
        yield ml


@click.group("feedback")
def feedback_group() -> None:
    """Feedback from backtests to the ML service: submit results, retrain, training jobs."""


@feedback_group.command("submit")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True,
              help="Records sent per request.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many runs (oldest first).")
@click.option("--ml-url", default=None, metavar="HOST:PORT",
              help="The ML service's gRPC address (default: the in-process feedback loop on this database).")
@click.option("--retrain/--no-retrain", default=True, show_default=True,
              help="In-process: retrain afterwards when the records made it due (a remote service does it itself).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
@click.pass_context
def submit(ctx: click.Context, batch_size: int, limit: int | None, ml_url: str | None, retrain: bool,
           as_json: bool) -> None:
    """Send unprocessed stored backtest runs as feedback; mark them processed once accepted."""
    from alphaloop.cli.main import settings_from
    from alphaloop.store import Store

    if ml_url:
        sink = remote_sink(ml_url)
        with sink, Store.from_settings(settings_from(ctx)) as store:
            report = _submit_with_errors(store, sink, batch_size, limit, ml_url)
    else:
        with open_loop(ctx) as (loop, store):
            report = _submit_with_errors(store, loop, batch_size, limit, None)
            if retrain and report.accepted:
                job = loop.retrain()
                report.training_job = None if job.status == "skipped" else job.to_dict()
    for run_id, reason in report.skipped.items():
        click.echo(f"warning: skipped run {run_id}: {reason}", err=True)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(table([("runs unprocessed", report.runs), ("records sent", len(report.submitted)),
                          ("accepted", len(report.accepted)), ("rejected", len(report.rejected)),
                          ("skipped (no record)", len(report.skipped)), ("batches", report.batches),
                          ("runs marked processed", report.marked_processed)]))
        job = report.training_job
        if job is not None:
            click.echo(f"training job {job['id']}: {job['status']}, "
                       f"{'promoted' if job['promoted'] else 'not promoted'} ({job['reason']})")
    if report.rejected:
        raise DiscoveryError(f"the ML service refused {len(report.rejected)} record(s): "
                             f"{', '.join(report.rejected[:5])}; those runs stay unprocessed")
    if report.skipped and not report.submitted:
        first = next(iter(report.skipped.values()))
        raise DataError(f"none of the {report.runs} unprocessed runs could become feedback; first: {first}")


def _submit_with_errors(store: Any, sink: Any, batch_size: int, limit: int | None, url: str | None) -> SubmitReport:
    try:
        return submit_runs(store, sink, batch_size=batch_size, limit=limit)
    except Exception as e:
        if url is None or type(e).__module__.split(".")[:3] != ["alphaloop", "services", "ml"]:
            raise
        # the client's Remote* errors: unreachable service, timeout, refusal
        raise DiscoveryError(f"ML service at {url}: {e}") from e


@feedback_group.command("retrain")
@click.option("--force", is_flag=True, help="Train even when the policy says it is not due.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-new", type=click.IntRange(min=1), default=None,
              help="Due when this many new records arrived (default 50).")
@click.option("--every-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Due this many hours after the last training when anything new arrived (default 24).")
@click.option("--data", "data_paths", multiple=True, type=click.Path(path_type=Path),
              help="Bars to (re)train the price models on; repeatable. None: only the evaluation model.")
@click.option("--ml-url", default=None, metavar="grpc://HOST:PORT",
              help="Retrain the ML service's evaluation model on its feedback (its own policy decides when "
                   "it is due; --min-new, --every-hours and --data do not apply).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
@click.pass_context
def retrain(ctx: click.Context, force: bool, seed: int, min_new: int | None, every_hours: float | None,
            data_paths: tuple[Path, ...], ml_url: str | None, as_json: bool) -> None:
    """Retrain the strategy-evaluation model (and price models with --data) if due or forced; the new
    version becomes champion only if it beats the current one on held-out feedback."""
    from alphaloop.data import load_bars

    if ml_url:
        given = [o for o, v in (("--min-new", min_new), ("--every-hours", every_hours), ("--data", data_paths)) if v]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot go with --ml-url: the ML service retrains by its "
                                   "own policy, on its own data")
        with _remote(ml_url) as ml:
            job = ml.retrain(force=force, seed=seed)
    else:
        price_data = {}
        for p in data_paths:
            bars = load_bars(p)
            price_data[bars.attrs["instrument"]] = bars
        with open_loop(ctx, min_new=min_new, every_hours=every_hours, price_data=price_data) as (loop, _):
            job = loop.retrain(force=force, seed=seed)
    if as_json:
        emit_json(job.to_dict())
    else:
        _print_job(job)
    if job.status == "failed":
        raise DiscoveryError(f"training job {job.id} failed: {job.reason}")


@feedback_group.command("status")
@click.option("--job", "job_id", default=None, help="One training job in full.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True, help="Jobs listed.")
@click.option("--ml-url", default=None, metavar="grpc://HOST:PORT",
              help="The ML service's feedback status (default: the in-process loop on this database).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
@click.pass_context
def status(ctx: click.Context, job_id: str | None, limit: int, ml_url: str | None, as_json: bool) -> None:
    """Feedback counts, the evaluation model's champion, whether retraining is due, and training jobs."""
    if ml_url:
        with _remote(ml_url) as ml:
            info = ml.feedback_status(job_id, limit=limit)
    else:
        from alphaloop.discovery.pipeline import InProcessML

        with open_loop(ctx) as (loop, _):
            if job_id is not None:
                info = {"jobs": [loop.job(job_id)]}  # an unknown id: an error naming the latest jobs
            else:
                info = InProcessML(loop).feedback_status(limit)
    if job_id is not None:
        job = info["jobs"][0]
        if as_json:
            emit_json(job.to_dict())
        else:
            _print_job(job)
        return
    info["jobs"] = [j.to_dict() for j in info["jobs"]]
    is_due, why = info["due"], info["due_reason"]
    if as_json:
        emit_json(info)
        return
    c = info["champion"]
    click.echo(table([("feedback records", info["feedback_records"]), ("new since last training", info["new_records"]),
                      ("retraining due", f"{'yes' if is_due else 'no'} ({why})"),
                      ("evaluation model", info["model"]),
                      ("champion", "none yet" if c is None else
                       f"v{c['version']} (held-out MAE {c['metrics'].get('mae', float('nan')):.4f}, "
                       f"Spearman {c['metrics'].get('spearman', float('nan')):.3f})")]))
    if info["jobs"]:
        click.echo()
        click.echo(table([(j["id"], j["status"], j["started_at"], j["n_records"], "yes" if j["promoted"] else "no",
                           j["challenger_version"] or "-", j["reason"]) for j in info["jobs"]],
                         ("job", "status", "started", "records", "promoted", "challenger", "reason")))


def _print_job(job: Any) -> None:
    ch, cp = job.metrics.get("challenger") or {}, job.metrics.get("champion") or {}
    rows = [("job", job.id), ("status", job.status), ("started", job.started_at), ("finished", job.finished_at),
            ("records", job.n_records), ("held out", job.metrics.get("n_holdout", "-")),
            ("challenger", job.challenger_version or "-"), ("champion before", job.champion_version or "-"),
            ("promoted", "yes" if job.promoted else "no")]
    for label, m in (("challenger", ch), ("champion", cp)):
        if m:
            rows.append((f"{label} held-out MAE / Spearman", f"{m.get('mae', float('nan')):.4f} / "
                                                              f"{m.get('spearman', float('nan')):.3f}"))
    if "baseline_mae" in job.metrics:
        rows.append(("baseline MAE (training mean)", job.metrics["baseline_mae"]))
    prices = job.metrics.get("price_models") or {}
    rows += [("price models", prices["skipped"])] if "skipped" in prices else [
        (f"price model {k}", f"{v['model']} v{v['version']}{' (champion)' if v['promoted'] else ''}")
        for k, v in prices.items()]
    rows.append(("reason", job.reason))
    click.echo(table(rows))


COMMANDS: list = []
ML_COMMANDS: list = [feedback_group]  # attached under `alphaloop ml`
