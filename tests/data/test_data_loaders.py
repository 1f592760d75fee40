"""load_bars / load_many against the real fixture files and small hand-written ones.

Expected values come from an independent reading of the same bytes (the stdlib csv module, datetime
with zoneinfo), not from pandas' own parser.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.core.errors import DataError
from alphaloop.data import generate_bars, load_bars, load_many

OHLCV = ["open", "high", "low", "close", "volume"]


def reference(path: Path, cols: dict[str, str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Times (as text) and columns read with the stdlib csv module; ``cols`` maps ours -> header."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    at = {name: header.index(name) for name in cols.values()}
    return [r[0] for r in body], {c: np.array([float(r[at[h]]) for r in body]) for c, h in cols.items()}


def assert_contract(df: pd.DataFrame) -> None:
    assert list(df.columns) == OHLCV
    assert all(df[c].dtype == np.float64 for c in OHLCV)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.name == "time"
    assert str(df.index.tz) == "UTC"
    assert df.index.unit == "ns"
    assert df.index.is_monotonic_increasing and df.index.is_unique


CAPS = {c: c.capitalize() for c in OHLCV}


@pytest.mark.parametrize("name, rows, style", [
    ("GOOG_daily", 2148, "pandas-index"),
    ("EURUSD_1h", 5000, "pandas-index"),
    ("BTC-USD_daily", 2723, "yahoo"),
])
def test_fixture_files_load_with_exact_values(market_dir: Path, name: str, rows: int, style: str) -> None:
    path = market_dir / f"{name}.csv"
    df = load_bars(path)
    assert_contract(df)
    assert len(df) == rows
    assert df.attrs == {"instrument": name, "source": str(path)}
    times, cols = reference(path, CAPS)
    for c in OHLCV:
        np.testing.assert_array_equal(df[c].to_numpy(), cols[c], err_msg=c)
    expected = [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in times]
    assert list(df.index.to_pydatetime()) == expected


def test_yahoo_uses_close_not_adj_close(market_dir: Path) -> None:
    path = market_dir / "BTC-USD_daily.csv"
    assert not path.read_bytes().endswith(b"\n")  # the fixture really lacks a final newline
    _, cols = reference(path, {"close": "Close", "volume": "Volume"})
    df = load_bars(path)
    np.testing.assert_array_equal(df["close"].to_numpy(), cols["close"])
    assert df["volume"].iloc[-1] == 32479047645.0  # last line, no newline after it


def test_dataframe_input_with_datetime_index(market_dir: Path) -> None:
    src = pd.read_csv(market_dir / "GOOG_daily.csv", index_col=0, parse_dates=True)
    df = load_bars(src, instrument="GOOG")
    assert_contract(df)
    assert df.attrs == {"instrument": "GOOG", "source": "DataFrame"}
    np.testing.assert_array_equal(df["close"].to_numpy(), src["Close"].to_numpy())
    assert (df.index == src.index.tz_localize("UTC")).all()


def test_dataframe_input_with_time_column_and_no_volume() -> None:
    src = pd.DataFrame({"timestamp": ["2021-03-01 10:00", "2021-03-01 11:00"],
                        "open": [1, 2], "high": [2, 3], "low": [1, 1], "close": [2, 2]})
    df = load_bars(src)
    assert_contract(df)
    assert df["volume"].tolist() == [0.0, 0.0]
    assert df.index[1] == pd.Timestamp("2021-03-01 11:00", tz="UTC")
    assert df.attrs["instrument"] == "DataFrame"
    assert list(src.columns) == ["timestamp", "open", "high", "low", "close"]  # input untouched


def test_filtered_dataframe_keeps_its_time_column() -> None:
    src = pd.DataFrame({"date": ["2020-01-01", "2020-01-02", "2020-01-03"], "open": [1.0] * 3,
                        "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.0] * 3}).iloc[[0, 2]]
    assert load_bars(src).index.day.tolist() == [1, 3]  # the leftover integer index is not a time
    with pytest.raises(DataError, match="no time column"):
        load_bars(src.drop(columns="date"))


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_round_trip(tmp_path: Path, market_dir: Path, suffix: str) -> None:
    original = load_bars(market_dir / "EURUSD_1h.csv")
    path = tmp_path / f"EURUSD{suffix}"
    original.to_parquet(path)
    back = load_bars(path)
    pd.testing.assert_frame_equal(back, original, check_freq=False)
    assert back.attrs == {"instrument": "EURUSD", "source": str(path)}


def test_parquet_with_time_column_and_capitalised_names(tmp_path: Path) -> None:
    src = pd.DataFrame({"Datetime": pd.to_datetime(["2020-01-01", "2020-01-02"]),
                        "Open": [1.0, 2.0], "High": [2.0, 3.0], "Low": [0.5, 1.5], "Close": [1.5, 2.5],
                        "Volume": [10, 20]})
    path = tmp_path / "x.parquet"
    src.to_parquet(path)
    df = load_bars(path, tz="Europe/Berlin")
    assert df.index[0] == pd.Timestamp("2019-12-31 23:00", tz="UTC")


def test_naive_file_in_new_york_converts_to_utc(write_file) -> None:
    stamps = ["2020-03-06 09:30:00", "2020-03-09 09:30:00", "2020-11-02 16:00:00"]  # around DST changes
    path = write_file("Datetime,Open,High,Low,Close,Volume\n"
                      + "".join(f"{s},1,2,0.5,1.5,10\n" for s in stamps))
    df = load_bars(path, tz="America/New_York")
    ny = ZoneInfo("America/New_York")
    expected = [datetime.fromisoformat(s).replace(tzinfo=ny).astimezone(UTC) for s in stamps]
    assert list(df.index.to_pydatetime()) == expected
    assert [t.hour for t in expected] == [14, 13, 21]  # EST, EDT, EST


def test_aware_timestamps_are_converted_and_ignore_tz(write_file) -> None:
    path = write_file("time,open,high,low,close\n"
                      "2020-01-01T10:00:00+02:00,1,2,0.5,1.5\n"
                      "2020-07-01T10:00:00+03:00,1,2,0.5,1.5\n"
                      "2020-07-02T10:00:00Z,1,2,0.5,1.5\n")
    df = load_bars(path, tz="Asia/Tokyo")
    assert [t.isoformat() for t in df.index] == ["2020-01-01T08:00:00+00:00", "2020-07-01T07:00:00+00:00",
                                                 "2020-07-02T10:00:00+00:00"]


def test_nonexistent_local_time_is_an_error(write_file) -> None:
    path = write_file("date,open,high,low,close\n2020-03-08 01:30,1,2,0.5,1.5\n"
                      "2020-03-08 02:30,1,2,0.5,1.5\n")
    with pytest.raises(DataError) as e:
        load_bars(path, tz="America/New_York")
    assert (e.value.line, e.value.field) == (3, "date")
    assert "daylight-saving" in str(e.value)


def test_repeated_hour_at_dst_end_is_resolved(write_file) -> None:
    # 01:00 happens twice on 2020-11-01 in New York: first EDT, then EST.
    stamps = ["2020-11-01 00:00", "2020-11-01 01:00", "2020-11-01 01:00", "2020-11-01 02:00"]
    path = write_file("Datetime,Open,High,Low,Close\n" + "".join(f"{s},1,2,0.5,1.5\n" for s in stamps))
    df = load_bars(path, tz="America/New_York")
    assert [t.hour for t in df.index] == [4, 5, 6, 7]


def test_single_ambiguous_time_names_the_local_time(write_file) -> None:
    path = write_file("Datetime,Open,High,Low,Close\n2020-11-01 01:30,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match="local time 2020-11-01 01:30:00 does not exist or is ambiguous"):
        load_bars(path, tz="America/New_York")


@pytest.mark.parametrize("stamp", ["06/01/2021 13:45", " 2021-06-01 13:45:00 ", "2021-06-01T13:45:00.000"])
def test_other_time_formats(write_file, stamp: str) -> None:
    path = write_file(f"time,open,high,low,close\n{stamp},1,2,0.5,1.5\n")
    assert load_bars(path).index[0] == pd.Timestamp("2021-06-01 13:45", tz="UTC")


HEADER_STYLES = {
    "lower": "date,open,high,low,close,volume\n{d},1,2,0.5,1.5,7\n",
    "upper": "DATE,OPEN,HIGH,LOW,CLOSE,VOLUME\n{d},1,2,0.5,1.5,7\n",
    "mixed": "DaTe,oPeN,High,low,CLOSE,Volume\n{d},1,2,0.5,1.5,7\n",
    "pandas-index": ",Open,High,Low,Close,Volume\n{d},1,2,0.5,1.5,7\n",
    "short-header": "Open,High,Low,Close,Volume\n{d},1,2,0.5,1.5,7\n",
    "yahoo": "Date,Open,High,Low,Close,Adj Close,Volume\n{d},1,2,0.5,1.5,1.2,7\n",
    "timestamp": "Timestamp,Open,High,Low,Close,Vol\n{d},1,2,0.5,1.5,7\n",
    "spaces": " Date , Open , High , Low , Close , Volume \n{d},1,2,0.5,1.5,7\n",
    "metatrader": "<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<TICKVOL>\n{day},{clock},1,2,0.5,1.5,7\n",
    "date+time": "Date,Time,Open,High,Low,Close,Volume\n{day},{clock},1,2,0.5,1.5,7\n",
    "bom": "\ufeffDate,Open,High,Low,Close,Volume\n{d},1,2,0.5,1.5,7\n",
    "crlf": "Date,Open,High,Low,Close,Volume\r\n{d},1,2,0.5,1.5,7\r\n",
    "no-final-newline": "Date,Open,High,Low,Close,Volume\n{d},1,2,0.5,1.5,7",
    "trailing-blank-lines": "Date,Open,High,Low,Close,Volume\n{d},1,2,0.5,1.5,7\n\n\n",
}


@pytest.mark.parametrize("style", sorted(HEADER_STYLES))
def test_header_styles(write_file, style: str) -> None:
    day, clock = ("2021.06.01", "13:45") if style == "metatrader" else ("2021-06-01", "13:45:00")
    path = write_file(HEADER_STYLES[style].format(d=f"{day} {clock}", day=day, clock=clock))
    df = load_bars(path)
    assert_contract(df)
    assert df.index.tolist() == [pd.Timestamp("2021-06-01 13:45", tz="UTC")]
    assert df.iloc[0].tolist() == [1.0, 2.0, 0.5, 1.5, 7.0]


@pytest.mark.parametrize("stamps, unit", [
    ([1_600_000_000, 1_600_003_600], "s"),
    ([1_600_000_000_000, 1_600_003_600_000], "ms"),
    ([1_600_000_000.5, 1_600_003_600.5], "s"),
])
def test_unix_epochs(write_file, stamps: list[float], unit: str) -> None:
    path = write_file("timestamp,open,high,low,close,volume\n"
                      + "".join(f"{s},1,2,0.5,1.5,7\n" for s in stamps))
    df = load_bars(path, tz="America/New_York")  # epochs are absolute: tz must not shift them
    scale = 1 if unit == "s" else 1000
    assert [t.timestamp() for t in df.index] == [s / scale for s in stamps]


def test_yyyymmdd_integers_are_dates(write_file) -> None:
    path = write_file("date,open,high,low,close\n20200102,1,2,0.5,1.5\n20200103,1,2,0.5,1.5\n")
    assert load_bars(path).index[1] == pd.Timestamp("2020-01-03", tz="UTC")


def test_time_column_argument(write_file) -> None:
    path = write_file("Bar Start,Open,High,Low,Close\n2020-01-01,1,2,0.5,1.5\n2020-01-02,1,2,0.5,1.5\n")
    with pytest.raises(DataError) as e:
        load_bars(path)
    assert e.value.line == 1 and "Bar Start" in str(e.value)
    df = load_bars(path, time_column="Bar Start")
    assert df.index[0] == pd.Timestamp("2020-01-01", tz="UTC")
    with pytest.raises(DataError) as e:
        load_bars(path, time_column="when")
    assert (e.value.line, e.value.field) == (1, "when")


def test_instrument_default_is_file_stem_and_override(market_dir: Path) -> None:
    assert load_bars(market_dir / "GOOG_daily.csv").attrs["instrument"] == "GOOG_daily"
    assert load_bars(str(market_dir / "GOOG_daily.csv"), instrument="GOOG").attrs["instrument"] == "GOOG"


def test_load_many(market_dir: Path) -> None:
    paths = sorted(market_dir.glob("*.csv"))
    out = load_many(paths)
    assert list(out) == [p.stem for p in paths]
    assert all(len(df) > 2000 for df in out.values())
    named = load_many({"BTC": paths[0], "EUR": paths[1]})
    assert list(named) == ["BTC", "EUR"]
    assert named["BTC"].attrs["instrument"] == "BTC"


def test_load_many_rejects_duplicate_instruments(market_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "GOOG_daily.csv"
    copy.write_bytes((market_dir / "GOOG_daily.csv").read_bytes())
    with pytest.raises(DataError, match=r"GOOG_daily.*twice"):
        load_many([market_dir / "GOOG_daily.csv", copy])


def test_missing_file_and_bad_tz(tmp_path: Path, market_dir: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_bars(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown time zone"):
        load_bars(market_dir / "GOOG_daily.csv", tz="Mars/Olympus")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**32), index_style=st.booleans())
def test_csv_round_trip_of_generated_bars(n: int, seed: int, index_style: bool) -> None:
    bars = generate_bars(n, seed=seed, freq="1h")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "SYNTH.csv"
        # pandas writes floats with repr, so the round trip must be exact
        (bars.rename_axis(None) if index_style else bars).to_csv(path)
        back = load_bars(path)
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
