"""``alphaloop config show``."""

from __future__ import annotations

import click

from alphaloop.cli.output import emit_json, table


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print every setting, its value and where it came from (default, file or environment)."""
    from alphaloop.cli.main import settings_from
    from alphaloop.core.config import setting_env_var

    s = settings_from(ctx)
    if as_json:
        emit_json({name: {"value": value, "source": source, "env": setting_env_var(name)}
                   for name, value, source in s.as_rows()})
        return
    click.echo(table([(n, v, src) for n, v, src in s.as_rows()], ("setting", "value", "source")))


COMMANDS = [config_group]
