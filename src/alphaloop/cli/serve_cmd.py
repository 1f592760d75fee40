"""``alphaloop serve NAME``: one service as its own process, or ``all`` of them under a supervisor."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

import click

from alphaloop.core.errors import ConfigError

PIPELINE = ("market-data", "patterns", "strategy", "execution")
OPTIONAL = {"ml": "alphaloop.services.ml.http", "tensorrt": "alphaloop.services.ml.http",
            "sentiment": "alphaloop.services.sentiment"}
MODULES = {"market-data": "alphaloop.services.market_data", "patterns": "alphaloop.services.patterns",
           "strategy": "alphaloop.services.strategy", "execution": "alphaloop.services.execution", **OPTIONAL}


def _names() -> list[str]:
    from alphaloop.services.topology import SERVICES

    return [*SERVICES, "all"]


def importable(name: str) -> bool:
    """Whether a service's module imports here (the ML and sentiment services are optional parts)."""
    try:
        importlib.import_module(MODULES[name])
        return True
    except ImportError as e:
        logging.getLogger("alphaloop.serve").warning("service %s left out: %s", name, e)
        return False


def run_options(ctx_params: dict[str, Any], settings: Any) -> Any:
    from alphaloop.core.ids import new_id
    from alphaloop.services.pipeline_protocol import RunOptions

    try:
        params = json.loads(ctx_params["params"] or "{}")
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="--params") from None
    if not isinstance(params, dict):
        raise click.BadParameter("expected a JSON object of parameter names to values", param_hint="--params")
    if ctx_params["strategy"] == "ml_multifactor":  # as `alphaloop run`: risk settings from configuration
        params.setdefault("threshold", settings.min_signal_threshold)
        params.setdefault("max_position_size", settings.max_position_size)
    return RunOptions(
        run_id=ctx_params["run_id"] or new_id("live"), data=tuple(str(p) for p in ctx_params["data"]),
        synthetic=ctx_params["synthetic"], instrument=ctx_params["instrument"], seed=ctx_params["seed"],
        bars=ctx_params["bars"], speed=ctx_params["speed"], strategy=ctx_params["strategy"], params=params,
        cash=settings.initial_cash if ctx_params["cash"] is None else ctx_params["cash"],
        commission=settings.commission if ctx_params["commission"] is None else ctx_params["commission"],
        model=ctx_params["model"], news=None if ctx_params["news"] is None else str(ctx_params["news"]),
        paused=ctx_params["paused"])


def build_service_app(name: str, settings: Any, options: Any, *, grpc_port: int | None, model: str | None,
                      news: Path | None) -> Any:
    """The FastAPI app of one service (its workers start with it)."""
    module = importlib.import_module(MODULES[name])
    if name in PIPELINE:
        if name == "strategy":
            return module.build_app(settings, options=options, services_factory=_services_factory(settings, options))
        return module.build_app(settings, options=options)
    if name in ("ml", "tensorrt"):
        # The ML service hosts the discovery feedback loop (and its retraining scheduler); the
        # TensorRT runner only predicts, so two services never retrain the same feedback.
        discovery = None
        if name == "ml":
            from alphaloop.services.ml.discovery_backend import build_discovery

            discovery = build_discovery(settings)
        return module.build_app(settings, service=name, model=model, grpc_port=grpc_port, discovery=discovery)
    return module.build_app(settings, news=news)


def _services_factory(settings: Any, options: Any) -> Any:
    def make() -> Any:
        from alphaloop.cli.wiring import build_services

        services, _ = build_services(settings, options.model, Path(options.news) if options.news else None, live=True)
        return services
    return make


@click.command("serve")
@click.argument("name", type=click.Choice(_names()))
@click.option("--host", default=None, help="Interface to bind (default: setting service_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="HTTP port (one service; default: its own).")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None, help="gRPC port of the ML service.")
@click.option("--port-offset", type=click.IntRange(0, 50000), default=0, show_default=True,
              help="Added to every default port (run several deployments on one machine).")
@click.option("--skip", multiple=True, help="With `all`: a service not to start (repeatable).")
@click.option("--run-id", default=None, help="Run id: names the streams and the database rows (default: new).")
@click.option("--data", multiple=True, type=click.Path(path_type=Path), help="Bars to replay; repeat per instrument.")
@click.option("--synthetic", is_flag=True, help="Replay the endless synthetic stream instead of files.")
@click.option("--instrument", default="SYNTH", show_default=True, help="Instrument of the synthetic stream.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic stream.")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Stop after this many timeline steps.")
@click.option("--speed", type=float, default=0.0, show_default=True, help="Bars (steps) per second; 0 = at once.")
@click.option("--paused", is_flag=True, help="market-data: wait for POST /replay {\"paused\": false}.")
@click.option("--strategy", default="sma_cross", show_default=True)
@click.option("--params", default="{}", help="Strategy parameters as a JSON object.")
@click.option("--cash", type=float, default=None, help="Initial cash (default: setting initial_cash).")
@click.option("--commission", type=float, default=None, help="Commission rate (default: setting commission).")
@click.option("--model", default=None, help="Registered model the strategy (and the ML service) uses.")
@click.option("--news", type=click.Path(path_type=Path), default=None, help="CSV of news (time, instrument, text).")
@click.pass_context
def serve(ctx: click.Context, name: str, host: str | None, port: int | None, grpc_port: int | None,
          port_offset: int, skip: tuple[str, ...], **run: Any) -> None:
    """Run a service of the pipeline as its own process (market-data, patterns, strategy, execution,
    ml, tensorrt, sentiment), or `all` of them, each in its own process, joined by Redis Streams
    (ALPHALOOP_REDIS_URL) and recording in the project database (ALPHALOOP_DATABASE_URL).

    The pipeline services take the run's options (--data/--synthetic, --strategy, --params, ...);
    give every process of one run the same options and --run-id. SIGTERM or Ctrl-C stops cleanly."""
    from alphaloop.cli.main import settings_from
    from alphaloop.services.topology import SERVICES

    settings = settings_from(ctx)
    host = host or settings.service_host
    needs_run = name == "all" or name in PIPELINE
    options = run_options(run, settings) if needs_run else None
    if name == "all":
        if port is not None:
            raise click.BadParameter("with `all` each service has its own port; use --port-offset", param_hint="--port")
        config = ctx.find_root().obj.get("config_file")
        raise SystemExit(_serve_all(settings, host, port_offset, options, set(skip),
                                    ["--config", config] if config else []))
    info = SERVICES[name]
    from alphaloop.services.logs import configure_logging
    from alphaloop.services.serving import serve_app

    configure_logging(name, settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if name in OPTIONAL and not importable(name):
        raise ConfigError(f"service {name} is not available in this installation")
    if grpc_port is None and info.grpc_port is not None:
        grpc_port = info.grpc_port + port_offset
    app = build_service_app(name, settings, options, grpc_port=grpc_port, model=run["model"], news=run["news"])
    port = port or info.http_port + port_offset
    click.echo(f"{name} listening on http://{host}:{port}", err=True)
    serve_app(app, host, port, log_level=settings.log_level)


def _serve_all(settings: Any, host: str, offset: int, options: Any, skip: set[str], root: list[str]) -> int:
    from alphaloop.services.supervisor import Child, Supervisor, child_env
    from alphaloop.services.topology import SERVICES, START_ORDER

    unknown = skip - set(SERVICES)
    if unknown:
        raise click.BadParameter(f"unknown service(s) {', '.join(sorted(unknown))}", param_hint="--skip")
    children = []
    for name in START_ORDER:
        if name in skip or (name in OPTIONAL and not importable(name)):
            continue
        info = SERVICES[name]
        argv = [*root, "serve", name, "--host", host, "--port", str(info.http_port + offset)]
        if info.grpc_port is not None:
            argv += ["--grpc-port", str(info.grpc_port + offset)]
        if name in PIPELINE:
            argv += options.to_args()
        elif name in ("ml", "tensorrt") and options.model:
            argv += ["--model", options.model]
        elif name == "sentiment" and options.news:
            argv += ["--news", options.news]
        children.append(Child(name, host, info.http_port + offset, argv))
    click.echo(f"run {options.run_id}: starting {', '.join(c.name for c in children)}")
    return Supervisor(children, echo=lambda line: click.echo(line), env=child_env()).run()


COMMANDS = [serve]
ML_COMMANDS: list = []  # attached under `alphaloop ml`
