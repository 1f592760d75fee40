"""The bundled sample CSVs: present as package data, loadable, and reproducible byte for byte."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from alphaloop.core.errors import DataError
from alphaloop.data import SAMPLES, load_sample, sample_paths, write_samples
from alphaloop.data.sample_data import SAMPLE_ROWS, sample_frame


def test_sample_paths_are_the_packaged_files() -> None:
    paths = sample_paths()
    assert [p.stem for p in paths] == sorted(SAMPLES)
    packaged = resources.files("alphaloop.data") / "samples"
    for p in paths:
        assert p.is_file()
        assert (packaged / p.name).read_bytes() == p.read_bytes()


def test_regeneration_reproduces_committed_bytes(tmp_path: Path) -> None:
    written = write_samples(tmp_path)
    assert [p.name for p in written] == [p.name for p in sample_paths()]
    for new, committed in zip(written, sample_paths()):
        assert new.read_bytes() == committed.read_bytes(), f"{committed.name} differs: regenerate and commit"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_load_sample_matches_the_generator(name: str) -> None:
    df = load_sample(name)
    assert len(df) == SAMPLE_ROWS
    assert df.attrs["instrument"] == name
    assert df.index.to_series().diff().dropna().eq(np.timedelta64(1, "D")).all()
    expected = sample_frame(name)
    assert (df.index == expected.index).all()
    np.testing.assert_allclose(df.to_numpy(), expected.to_numpy(), rtol=0, atol=5e-7)  # files keep 6 decimals
    np.testing.assert_array_equal(df["volume"].to_numpy(), expected["volume"].to_numpy())


def test_samples_differ_from_each_other() -> None:
    closes = [load_sample(n)["close"].to_numpy() for n in SAMPLES]
    returns = [np.diff(np.log(c)) for c in closes]
    assert len({round(float(np.corrcoef(returns[0], r)[0, 1]), 6) for r in returns[1:]}) == len(returns) - 1
    assert all(abs(np.corrcoef(returns[0], r)[0, 1]) < 0.2 for r in returns[1:])


def test_load_sample_accepts_file_names_and_rejects_unknown() -> None:
    assert len(load_sample("synth_a.csv")) == SAMPLE_ROWS
    with pytest.raises(DataError, match="available: SYNTH_A"):
        load_sample("NOPE")
