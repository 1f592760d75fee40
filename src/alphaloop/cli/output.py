"""Printing helpers shared by the sub-commands: JSON that is always valid, aligned tables."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd


def jsonable(x: Any) -> Any:
    """NaN and infinities become null (JSON has neither); numpy and pandas scalars become Python."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.isoformat()
    if isinstance(x, Path):
        return str(x)
    return x


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(jsonable(obj), allow_nan=False))


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.2f}"
    return "-" if v is None else str(v)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    rows = [[fmt(c) for c in r] for r in rows]
    if headers:
        rows.insert(0, list(headers))
    if not rows:
        return ""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in rows]
    if headers:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
