"""Errors raised by the pattern detectors, their registry and the pattern engine."""

from __future__ import annotations

from alphaloop.core.errors import AlphaloopError


class PatternError(AlphaloopError):
    """A detector could not be built or fed: unknown name, bad parameter, bad bar."""

    exit_code = 5


class UnknownDetectorError(PatternError):
    """No detector is registered under the requested name."""


class BarOrderError(PatternError):
    """A bar is not after the last bar already accepted for its instrument."""
