"""Bundled sample bars for demos and docs, made by the synthetic generator.

The CSVs under ``samples/`` are committed, and ``write_samples`` rebuilds them byte for byte (a test
checks it): every number is written with a fixed format by Python's correctly rounded formatting, so
the files depend only on the seeds below. Regenerate with ``python -m alphaloop.data.sample_data``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from alphaloop.core.errors import DataError
from alphaloop.data.loaders import load_bars
from alphaloop.data.synthetic import generate_bars

SAMPLES_DIR = Path(__file__).with_name("samples")  # package data: present in installed wheels too

# name -> generate_bars arguments. Changing one changes the committed file: regenerate and commit.
SAMPLES: dict[str, dict[str, Any]] = {
    "SYNTH_A": {"seed": 11, "regime": "trend", "start_price": 100.0},
    "SYNTH_B": {"seed": 22, "regime": "mean_revert", "start_price": 50.0},
    "SYNTH_C": {"seed": 33, "regime": "mixed", "start_price": 250.0},
}
SAMPLE_ROWS = 1500
SAMPLE_START = "2018-01-01"


def sample_frame(name: str) -> pd.DataFrame:
    """The generator's output for sample ``name`` (before rounding to the file's 6 decimals)."""
    return generate_bars(SAMPLE_ROWS, start=SAMPLE_START, freq="1D", instrument=name, **SAMPLES[name])


def _csv_text(df: pd.DataFrame) -> str:
    times = df.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [f"{t},{o:.6f},{h:.6f},{lo:.6f},{c:.6f},{int(v)}"
            for t, o, h, lo, c, v in zip(times, *(df[col].to_numpy() for col in df.columns))]
    return "time,open,high,low,close,volume\n" + "\n".join(rows) + "\n"


def write_samples(directory: str | Path) -> list[Path]:
    """(Re)write every sample CSV into ``directory``; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLES:
        path = directory / f"{name}.csv"
        path.write_bytes(_csv_text(sample_frame(name)).encode("ascii"))
        paths.append(path)
    return paths


def sample_paths() -> list[Path]:
    """Paths of the bundled sample bar files, sorted by name."""
    return [SAMPLES_DIR / f"{name}.csv" for name in sorted(SAMPLES)]


def sample_news_path() -> Path:
    """Hand-written headlines about the sample instruments (time, instrument, text), for the demo."""
    return SAMPLES_DIR / "news.csv"


def load_sample(name: str) -> pd.DataFrame:
    """Load a bundled sample by name (``"SYNTH_A"`` or ``"SYNTH_A.csv"``, any case)."""
    by_name = {p.stem.lower(): p for p in sample_paths()}
    key = name.removesuffix(".csv").removesuffix(".CSV").lower()
    if key not in by_name:
        raise DataError(f"no sample named {name!r}; available: {', '.join(p.stem for p in sample_paths())}",
                        source=str(SAMPLES_DIR))
    path = by_name[key]
    return load_bars(path, instrument=path.stem)


if __name__ == "__main__":
    for p in write_samples(sys.argv[1] if len(sys.argv) > 1 else SAMPLES_DIR):
        print(p)
