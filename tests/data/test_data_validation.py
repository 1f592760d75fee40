"""Every malformed input is a DataError naming the file, the exact line and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop.core.errors import DataError
from alphaloop.data import load_bars, validate_bars

HEADER = "Date,Open,High,Low,Close,Volume"
GOOD = [
    "2020-01-01,10,11,9,10.5,100",      # line 2
    "2020-01-02,10.5,12,10,11,200",     # line 3
    "2020-01-03,11,11.5,10.5,11.2,150",  # line 4
    "2020-01-06,11.2,11.8,11,11.5,120",  # line 5
]


def with_line4(row: str) -> str:
    rows = list(GOOD)
    rows[2] = row
    return "\n".join([HEADER, *rows]) + "\n"


# name -> (file text, line, field, words the message must contain)
CASES = {
    "missing column": ("Date,Open,Low,Close,Volume\n2020-01-01,10,9,10.5,100\n", 1, "high",
                       ["missing required column(s) high", "found: 'Date', 'Open', 'Low', 'Close', 'Volume'"]),
    "two missing columns": ("Date,Open,Volume\n2020-01-01,10,100\n", 1, "high", ["high, low, close"]),
    "empty file": ("", 1, None, ["empty"]),
    "header only": (HEADER + "\n", 2, None, ["no data rows"]),
    "unparseable date": (with_line4("2020-13-45,11,11.5,10.5,11.2,150"), 4, "Date",
                         ["cannot parse", "2020-13-45"]),
    "year out of range": (with_line4("2300-01-03,11,11.5,10.5,11.2,150"), 4, "Date", ["outside the supported years"]),
    "missing date": (with_line4(",11,11.5,10.5,11.2,150"), 4, "Date", ["missing timestamp"]),
    "duplicate timestamp": (with_line4("2020-01-02,11,11.5,10.5,11.2,150"), 4, "Date",
                            ["duplicate timestamp", "line 3"]),
    "non-increasing": (with_line4("2019-12-31,11,11.5,10.5,11.2,150"), 4, "Date",
                       ["earlier than", "not sorted"]),
    "missing price": (with_line4("2020-01-03,11,,10.5,11.2,150"), 4, "High", ["missing price"]),
    "NaN text": (with_line4("2020-01-03,11,11.5,10.5,NaN,150"), 4, "Close", ["missing price"]),
    "zero price": (with_line4("2020-01-03,11,11.5,0,11.2,150"), 4, "Low", ["not positive"]),
    "negative price": (with_line4("2020-01-03,-11,11.5,10.5,11.2,150"), 4, "Open", ["not positive"]),
    "infinite price": (with_line4("2020-01-03,11,inf,10.5,11.2,150"), 4, "High", ["not finite"]),
    "high below low": (with_line4("2020-01-03,10,9,10.5,10,150"), 4, "High", ["high 9 is below low 10.5"]),
    "open above high": (with_line4("2020-01-03,12,11.5,10.5,11.2,150"), 4, "Open",
                        ["open 12 is outside", "[low 10.5, high 11.5]"]),
    "open below low": (with_line4("2020-01-03,10,11.5,10.5,11.2,150"), 4, "Open", ["open 10 is outside"]),
    "close outside": (with_line4("2020-01-03,11,11.5,10.5,9,150"), 4, "Close", ["close 9 is outside"]),
    "negative volume": (with_line4("2020-01-03,11,11.5,10.5,11.2,-5"), 4, "Volume", ["volume -5 is negative"]),
    "missing volume": (with_line4("2020-01-03,11,11.5,10.5,11.2,"), 4, "Volume", ["missing volume"]),
    "non-numeric price": (with_line4("2020-01-03,11,11.5,10.5,abc,150"), 4, "Close",
                          ["non-numeric value 'abc'"]),
    "non-numeric volume": (with_line4("2020-01-03,11,11.5,10.5,11.2,1e3x"), 4, "Volume", ["non-numeric"]),
    "blank line inside": (with_line4(""), 4, None, ["empty line"]),
    "too many fields": (with_line4("2020-01-03,11,11.5,10.5,11.2,150,9"), 4, None,
                        ["expected 6 fields", "found 7"]),
    "too few fields": (with_line4("2020-01-03,11,11.5,10.5,11.2"), 4, "Volume", ["missing volume"]),
    "ambiguous columns": ("Date,Open,High,Low,Close,close\n2020-01-01,10,11,9,10.5,10\n", 1, "close",
                          ["'Close' and 'close'"]),
    "no time column": ("Open,High,Low,Close,Volume\n10,11,9,10.5,100\n", 1, None, ["no time column"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_csv(write_file, case: str) -> None:
    text, line, field, words = CASES[case]
    path = write_file(text, "bad.csv")
    with pytest.raises(DataError) as e:
        load_bars(path)
    err = e.value
    assert (err.source, err.line, err.field) == (str(path), line, field)
    message = str(err)
    assert message.startswith(f"{path}: line {line}")
    for w in words:
        assert w in message, (w, message)


def test_earliest_offending_row_wins(write_file) -> None:
    rows = list(GOOD)
    rows[1] = "2020-01-02,10.5,12,10,11,-1"   # line 3: negative volume
    rows[3] = "2020-01-06,11.2,11,11.8,11.5,120"  # line 5: high below low
    path = write_file("\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as e:
        load_bars(path)
    assert (e.value.line, e.value.field) == (3, "Volume")


def test_unsorted_file_is_not_sorted_silently(write_file) -> None:
    rows = [GOOD[1], GOOD[0], GOOD[2]]
    with pytest.raises(DataError, match="not sorted"):
        load_bars(write_file("\n".join([HEADER, *rows]) + "\n"))


def test_error_line_counts_bom_crlf_and_pandas_index_header(write_file) -> None:
    text = "\ufeff,Open,High,Low,Close,Volume\r\n" + "\r\n".join([*GOOD[:2], "2020-01-03,11,11.5,12,11.2,1"])
    path = write_file(text)
    with pytest.raises(DataError) as e:
        load_bars(path)
    assert (e.value.line, e.value.field) == (4, "High")


def frame(**changes: list[float]) -> pd.DataFrame:
    base = {"open": [10.0, 10.5, 11.0], "high": [11.0, 12.0, 11.5], "low": [9.0, 10.0, 10.5],
            "close": [10.5, 11.0, 11.2], "volume": [1.0, 2.0, 3.0]}
    return pd.DataFrame(base | changes, index=pd.date_range("2020-01-01", periods=3, tz="UTC", name="time"))


@pytest.mark.parametrize("changes, field, words", [
    ({"high": [11.0, 12.0, 10.0]}, "high", "high 10 is below low 10.5"),
    ({"close": [10.5, np.nan, 11.2]}, "close", "missing price"),
    ({"volume": [1.0, 2.0, -3.0]}, "volume", "negative"),
    ({"open": [10.0, "x", 11.0]}, "open", "non-numeric value 'x'"),
])
def test_dataframe_errors_name_the_row(changes: dict, field: str, words: str) -> None:
    df = frame(**changes)
    with pytest.raises(DataError) as e:
        load_bars(df)
    row = 2 if field in ("high", "volume") else 1
    assert (e.value.source, e.value.line, e.value.field) == ("DataFrame", None, field)
    assert f"row {row}: " in str(e.value) and words in str(e.value)


def test_dataframe_duplicate_index_and_parquet_rows(tmp_path: Path) -> None:
    df = frame()
    df.index = pd.DatetimeIndex([df.index[0], df.index[1], df.index[1]], name="time")
    with pytest.raises(DataError, match=r"row 2: duplicate timestamp .* \(same as row 1\)"):
        load_bars(df)
    path = tmp_path / "dup.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError) as e:
        load_bars(path)
    assert (e.value.source, e.value.line, e.value.field) == (str(path), None, "time")
    assert "row 2" in str(e.value)


def test_validate_bars_directly() -> None:
    validate_bars(frame(), "mem")  # valid: no error
    with pytest.raises(DataError, match="missing required column"):
        validate_bars(frame().drop(columns="volume"), "mem")
    with pytest.raises(DataError, match="tz-aware"):
        validate_bars(frame().tz_localize(None), "mem")
    with pytest.raises(DataError, match="must be in UTC"):
        validate_bars(frame().tz_convert("Europe/Paris"), "mem")
    with pytest.raises(DataError) as e:
        validate_bars(frame(low=[9.0, 12.5, 10.5]), "f.csv", first_line=2, fields={"high": "High"})
    assert (e.value.line, e.value.field) == (3, "High")  # high 12 < low 12.5 wins over open outside


def test_validation_is_vectorised_on_a_large_frame() -> None:
    # A million rows with one bad bar near the end: found without a per-row loop (fast enough to run).
    n = 1_000_000
    idx = pd.date_range("2000-01-01", periods=n, freq="1min", tz="UTC", name="time")
    px = np.full(n, 100.0)
    df = pd.DataFrame({"open": px, "high": px + 1, "low": px - 1, "close": px, "volume": px}, index=idx)
    df.iloc[n - 10, 2] = 102.0
    with pytest.raises(DataError, match=f"row {n - 10}: high 101 is below low 102"):
        validate_bars(df, "DataFrame")
