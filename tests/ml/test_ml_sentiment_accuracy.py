"""Accuracy on labelled finance headlines: plain VADER against VADER + the finance lexicon.

``headlines.csv`` (the main set) was written alongside the rules; ``headlines_holdout.csv`` was
written after the rules were finished and is only reported, never asserted on. Run with ``-s``
to see the table (also: ``python -m alphaloop.ml.sentiment``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from alphaloop.core.errors import DataError
from alphaloop.ml.sentiment import VaderBackend, VaderFinanceBackend, compare, evaluate, load_labelled
from alphaloop.ml.sentiment.evaluation import default_backends, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sentiment"
MAIN, HOLDOUT = FIXTURES / "headlines.csv", FIXTURES / "headlines_holdout.csv"


@pytest.fixture(scope="module")
def main_rows():
    return load_labelled(MAIN)


@pytest.fixture(scope="module")
def holdout_rows():
    return load_labelled(HOLDOUT)


def test_the_sets_are_big_enough_balanced_and_disjoint(main_rows, holdout_rows):
    assert len(main_rows) >= 150 and len(holdout_rows) >= 40
    for rows in (main_rows, holdout_rows):
        counts = Counter(lab for _, lab in rows)
        assert set(counts) == {"positive", "negative", "neutral"}
        assert max(counts.values()) - min(counts.values()) <= 0.1 * len(rows)
        texts = [t.lower() for t, _ in rows]
        assert len(set(texts)) == len(texts)
    assert not {t.lower() for t, _ in main_rows} & {t.lower() for t, _ in holdout_rows}


def test_accuracy_table(main_rows, holdout_rows):
    table = compare(default_backends(), {f"main (n={len(main_rows)})": main_rows,
                                         f"holdout (n={len(holdout_rows)})": holdout_rows})
    print("\n" + table.to_string(float_format=lambda x: f"{x:.3f}"))
    ours = evaluate(VaderFinanceBackend(), main_rows)
    plain = evaluate(VaderBackend(), main_rows)
    print(f"\nours, main set:\n{ours.confusion_frame().to_string()}")
    held = evaluate(VaderFinanceBackend(), holdout_rows)
    print(f"\nours, holdout ({held.accuracy:.3f}); misses:")
    for text, expected, got in held.errors:
        print(f"  {expected:>8} -> {got:<8} {text}")
    assert ours.accuracy >= 0.85
    assert ours.accuracy > plain.accuracy


def test_evaluate_returns_accuracy_and_confusion():
    rows = [("Acme beats estimates", "positive"), ("Acme files for Chapter 11", "negative"),
            ("Acme to report results on Friday", "neutral"), ("Acme cuts guidance", "positive")]
    ev = evaluate(VaderFinanceBackend(), rows)
    assert ev.n == 4 and ev.confusion.sum() == 4
    assert ev.accuracy == pytest.approx(np.trace(ev.confusion) / 4) == pytest.approx(0.75)
    frame = ev.confusion_frame()
    assert frame.loc["positive", "negative"] == 1  # the wrong label in the last row
    assert ev.errors == (("Acme cuts guidance", "positive", "negative"),)
    assert ev.recall()["negative"] == 1.0 and ev.recall()["positive"] == 0.5
    assert "accuracy 0.750" in str(ev)


def test_evaluate_rejects_unknown_labels():
    with pytest.raises(ValueError, match="unknown labels"):
        evaluate(VaderBackend(), [("Acme beats", "bullish")])
    with pytest.raises(ValueError, match="no rows"):
        evaluate(VaderBackend(), [])


def test_load_labelled_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nAcme beats,positive\nAcme misses,bearish\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv: line 3: field 'label'"):
        load_labelled(bad)
    cols = tmp_path / "cols.csv"
    cols.write_text("headline,sentiment\nx,positive\n", encoding="utf-8")
    with pytest.raises(DataError, match="expected columns text,label"):
        load_labelled(cols)


def test_evaluation_script(capsys):
    assert main([str(HOLDOUT)]) == 0
    out = capsys.readouterr().out
    assert "plain VADER" in out and "VADER + finance (ours)" in out
