"""A hash of trades and metrics: two runs with the same fingerprint made the same trades and numbers.

Floats are rounded to 10 significant digits before hashing, so a refactor that only reorders a sum
(last-bit noise) keeps the fingerprint while any real change of a trade or metric moves it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

_TRADE_FIELDS = ("size", "entry_bar", "exit_bar", "entry_price", "exit_price", "pnl")
_DIGITS = 10


def _significant(x: np.ndarray) -> bytes:
    """(mantissa, exponent) pairs of ``x`` at 10 significant digits, as bytes; NaN and inf kept distinct."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x) & (x != 0)
    exp = np.zeros(x.shape, dtype=np.int64)
    exp[finite] = np.floor(np.log10(np.abs(x[finite]))).astype(np.int64) - (_DIGITS - 1)
    mant = np.zeros(x.shape, dtype=np.int64)
    mant[finite] = np.round(x[finite] / np.power(10.0, exp[finite])).astype(np.int64)
    special = np.where(np.isnan(x), 1, np.where(np.isposinf(x), 2, np.where(np.isneginf(x), 3, 0)))
    return np.stack([mant, exp, special]).tobytes()


def fingerprint(trades: pd.DataFrame, metrics: dict[str, float]) -> str:
    h = hashlib.sha256()
    h.update("\n".join(trades["instrument"].astype(str).tolist()).encode())
    for col in _TRADE_FIELDS:
        h.update(_significant(trades[col].to_numpy(dtype=float)))
    names = sorted(metrics)
    h.update(",".join(names).encode())
    h.update(_significant(np.array([metrics[k] for k in names], dtype=float)))
    return h.hexdigest()
