"""Accuracy of a sentiment backend on labelled headlines, and a side-by-side table.

Run ``python -m alphaloop.ml.sentiment [file.csv ...]`` to print plain VADER against
the finance backend on labelled CSV files (columns ``text,label``; labels positive / negative /
neutral). Without arguments it looks for the repository's ``tests/fixtures/sentiment`` sets.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.core.errors import DataError
from alphaloop.ml.sentiment.base import LABELS


@dataclass(frozen=True, slots=True)
class Evaluation:
    """``confusion[i, j]``: texts labelled ``labels[i]`` that the backend called ``labels[j]``;
    ``errors`` lists (text, expected, predicted) for every miss."""

    accuracy: float
    n: int
    labels: tuple[str, ...]
    confusion: np.ndarray
    errors: tuple[tuple[str, str, str], ...]

    def confusion_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.confusion, index=pd.Index(self.labels, name="true"),
                            columns=pd.Index(self.labels, name="predicted"))

    def recall(self) -> dict[str, float]:
        """Share of each true label that was found."""
        totals = self.confusion.sum(axis=1)
        return {lab: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
                for i, lab in enumerate(self.labels)}

    def __str__(self) -> str:
        return f"accuracy {self.accuracy:.3f} on {self.n}\n{self.confusion_frame().to_string()}"


def _rows(rows: Any) -> list[tuple[str, str]]:
    if isinstance(rows, pd.DataFrame):
        return list(zip(rows["text"].astype(str), rows["label"].astype(str)))
    return [(str(t), str(lab)) for t, lab in rows]


def evaluate(backend: Any, rows: Iterable[tuple[str, str]] | pd.DataFrame) -> Evaluation:
    """Score ``rows`` (``(text, label)`` pairs or a frame with ``text``/``label`` columns) with
    ``backend`` (a backend or a :class:`SentimentEngine`) and compare labels."""
    data = _rows(rows)
    if not data:
        raise ValueError("evaluate: no rows")
    expected = [lab.strip().lower() for _, lab in data]
    bad = sorted({lab for lab in expected if lab not in LABELS})
    if bad:
        raise ValueError(f"evaluate: unknown labels {bad}; expected {LABELS}")
    texts = [t for t, _ in data]
    score = getattr(backend, "score_many", None) or backend.score_batch
    predicted = [s.label for s in score(texts)]
    index = {lab: i for i, lab in enumerate(LABELS)}
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    for e, p in zip(expected, predicted):
        confusion[index[e], index[p]] += 1
    errors = tuple((t, e, p) for t, e, p in zip(texts, expected, predicted) if e != p)
    return Evaluation(float(np.trace(confusion) / len(data)), len(data), LABELS, confusion, errors)


def load_labelled(path: str | Path) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV with ``text`` and ``label`` columns; a bad row raises
    :class:`DataError` naming the file and line."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
                raise DataError(f"expected columns text,label; got {reader.fieldnames}", source=str(p), line=1)
            out = []
            for row in reader:
                text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip().lower()
                if not text:
                    raise DataError("empty text", source=str(p), line=reader.line_num, field="text")
                if label not in LABELS:
                    raise DataError(f"label {label!r} is not one of {LABELS}", source=str(p),
                                    line=reader.line_num, field="label")
                out.append((text, label))
    except OSError as e:
        raise DataError(f"cannot read: {e}", source=str(p)) from e
    return out


def compare(backends: Mapping[str, Any], datasets: Mapping[str, Sequence[tuple[str, str]]]) -> pd.DataFrame:
    """Accuracy of each backend (rows) on each data set (columns)."""
    table = {ds: {name: evaluate(b, rows).accuracy for name, b in backends.items()} for ds, rows in datasets.items()}
    return pd.DataFrame(table).rename_axis("backend")


def default_backends() -> dict[str, Any]:
    """Plain VADER (its documented +-0.05 band), plain VADER with our band, and ours."""
    from alphaloop.ml.sentiment.vader import FINANCE_NEUTRAL_BAND, VaderBackend, VaderFinanceBackend

    return {
        "plain VADER (band 0.05)": VaderBackend(),
        f"plain VADER (band {FINANCE_NEUTRAL_BAND})": VaderBackend(neutral_band=FINANCE_NEUTRAL_BAND),
        "VADER + finance (ours)": VaderFinanceBackend(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        here = Path(__file__).resolve()
        fixtures = next((d / "tests/fixtures/sentiment" for d in here.parents
                         if (d / "tests/fixtures/sentiment").is_dir()), None)
        if fixtures is None:
            print("usage: python -m alphaloop.ml.sentiment FILE.csv [FILE.csv ...]", file=sys.stderr)
            return 2
        args = [str(p) for p in sorted(fixtures.glob("*.csv"))]
    datasets = {f"{Path(a).stem} (n={len(rows)})": rows for a in args for rows in [load_labelled(a)]}
    print(compare(default_backends(), datasets).to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
