"""Errors raised by the indicators (bad input, bad parameters, out-of-order bars)."""

from __future__ import annotations

from alphaloop.core.errors import AlphaloopError


class IndicatorError(AlphaloopError):
    """An indicator was given bad input: mismatched lengths, a bad period, NaN inside a series,
    or (streaming) a bar older than the last one it accepted."""

    exit_code = 5
