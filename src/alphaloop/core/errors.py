"""One error hierarchy for the whole platform.

Every error carries an ``exit_code`` that the CLI uses, so scripts can tell a bad input file
from a bad strategy or an unreachable database without parsing messages.
"""

from __future__ import annotations


class AlphaloopError(Exception):
    """Base of every error alphaloop raises on purpose."""

    exit_code = 1


class ConfigError(AlphaloopError):
    """A configuration value or file is invalid."""

    exit_code = 3


class DataError(AlphaloopError):
    """Market or betting data could not be loaded or failed validation.

    ``source`` names the file (or "DataFrame"), ``line`` the 1-based line in that file
    (header is line 1), ``field`` the column.
    """

    exit_code = 4

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.source, self.line, self.field, self.reason = source, line, field, message
        where = [p for p in (source, f"line {line}" if line is not None else None,
                             f"field '{field}'" if field else None) if p]
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class StrategyError(AlphaloopError):
    """A strategy could not be found, built or run (unknown name, bad parameters, look-ahead)."""

    exit_code = 5


class LookAheadError(StrategyError):
    """An indicator's value at bar t changed when bars after t were added."""


class OrderError(AlphaloopError):
    """An order is malformed (zero size, limit on the wrong side of a bracket, unknown instrument)."""

    exit_code = 6


class StoreError(AlphaloopError):
    """The database is unreachable or a write failed; nothing partial was written."""

    exit_code = 7
