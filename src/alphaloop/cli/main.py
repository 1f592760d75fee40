"""Entry point: global options, sub-command registration and error-to-exit-code mapping."""

from __future__ import annotations

import sys

import click

from alphaloop import __version__
from alphaloop.core.config import load_settings
from alphaloop.core.errors import AlphaloopError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="alphaloop")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML config file (default: $ALPHALOOP_CONFIG, else $ALPHALOOP_HOME/config.yaml).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """alphaloop: ML-driven strategy platform. One strategy code for backtests and live trading.

    State (database, models, caches, logs) lives under $ALPHALOOP_HOME (default ~/.alphaloop).
    """
    ctx.obj = {"config_file": config_file}


def settings_from(ctx: click.Context):
    return load_settings(ctx.find_root().obj.get("config_file"))


def _register() -> None:
    from alphaloop.cli import (
        backtest_cmd,
        config_cmd,
        data_cmd,
        discover_cmd,
        feedback_cmd,
        ml_cmd,
        patterns_cmd,
        run_cmd,
        runs_cmd,
        sentiment_cmd,
        serve_cmd,
    )

    modules = (backtest_cmd, config_cmd, data_cmd, discover_cmd, feedback_cmd, ml_cmd, patterns_cmd, run_cmd,
               runs_cmd, sentiment_cmd, serve_cmd)
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)
    # Sub-commands of `alphaloop ml` that live in their own modules (feedback, status).
    for module in modules:
        for command in getattr(module, "ML_COMMANDS", ()):
            ml_cmd.ml_group.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; alphaloop errors become one line on stderr and their exit code."""
    try:
        cli.main(args=argv, prog_name="alphaloop", standalone_mode=False)
    except AlphaloopError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
