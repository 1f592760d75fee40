"""The discovery layer's errors (exit code 10 on the CLI)."""

from __future__ import annotations

from alphaloop.core.errors import AlphaloopError


class DiscoveryError(AlphaloopError):
    """Base of every error the discovery layer raises on purpose."""

    exit_code = 10


class DiscoveryInputError(DiscoveryError, ValueError):
    """An argument is out of range or malformed (a score outside [0, 1], an odd block count, NaN
    returns). Also a ``ValueError`` so generic callers can catch it as one."""


class InsufficientDataError(DiscoveryInputError):
    """Too few bars or returns for the requested evaluation (the message names the sizes)."""
