"""Shared helpers for the market-data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

MARKET = Path(__file__).resolve().parents[1] / "fixtures" / "market"


@pytest.fixture
def market_dir() -> Path:
    return MARKET


@pytest.fixture
def write_file(tmp_path: Path):
    """Write ``text`` (str or bytes, exactly as given) to a temp file and return its path."""

    def write(text: str | bytes, name: str = "bars.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return write
