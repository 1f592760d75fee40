"""The model registry on every backend: in memory, SQLite and the real PostgreSQL server.

Files go to a temporary models directory; rows to the backend. Failures are real ones: a tampered
file, bytes that are not ONNX, a database trigger refusing the insert.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from alphaloop.ml.artifact import ModelArtifact
from alphaloop.ml.errors import MLError, ModelLoadError, ModelNotFoundError
from alphaloop.ml.export import export_model, onnx_predict
from alphaloop.ml.features import FEATURE_SET
from alphaloop.ml.registry import (
    MemoryRegistryBackend,
    ModelRegistry,
    ModelVersionRecord,
    RegistryBackend,
)
from alphaloop.store import SqlModelRepository, Store

MODEL_TABLES = ("model_aliases", "model_versions", "prediction_records")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryBackend]:
    if request.param == "memory":
        yield MemoryRegistryBackend()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with Store(url) as store:
        if request.param == "postgresql":  # the database lives for the whole session
            with store.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(MODEL_TABLES)} RESTART IDENTITY CASCADE"))
        yield SqlModelRepository(store)


@pytest.fixture
def registry(backend: RegistryBackend, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", backend)


@pytest.fixture(scope="module")
def artifacts(train_fitted) -> dict[str, ModelArtifact]:
    return {"reg": export_model(train_fitted("GOOG", "linear", "regression"), "goog"),
            "cls": export_model(train_fitted("GOOG", "lightgbm", "classification"), "goog")}


def onnx_files(folder: Path) -> list[str]:
    """Everything in a model's folder except the lock file: published files and leftovers."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.exists() else []


def rewrite_row(backend: RegistryBackend, name: str, version: int, **changes: Any) -> None:
    """Change a stored row behind the registry's back (what a bad actor or a bug could do)."""
    if isinstance(backend, MemoryRegistryBackend):
        old = backend.get_version(name, version)
        backend._versions[name][version] = dataclasses.replace(old, **changes)
        return
    with backend.store.engine.begin() as conn:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        conn.execute(text(f"UPDATE model_versions SET {sets} WHERE name = :n AND version = :v"),
                     {**changes, "n": name, "v": version})


def same_json(a: Any, b: Any) -> bool:
    """Equality through a JSON round trip: tuples are lists, NaN equals NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# ---------------------------------------------------------------------- round trip


def test_register_load_round_trip(registry: ModelRegistry, artifacts, train_fitted) -> None:
    art = artifacts["cls"]
    got = registry.register(art)
    assert (got.name, got.version, got.sha256) == ("goog", 1, art.sha256)
    path = registry.models_dir / "goog" / "1.onnx"
    assert path.read_bytes() == art.onnx and got.metadata["path"] == str(path)
    assert onnx_files(path.parent) == ["1.onnx"]  # no temporary file left behind

    loaded = registry.load("goog")
    assert loaded.onnx == art.onnx and loaded.sha256 == ModelArtifact.digest(loaded.onnx) == art.sha256
    assert (loaded.task, loaded.horizon, loaded.schema) == ("classification", 5, FEATURE_SET)
    for key, value in art.metadata.items():  # everything export recorded comes back
        assert same_json(loaded.metadata[key], value), key
    assert loaded.metadata["metrics"]["overall"]["auc"] == art.metadata["metrics"]["overall"]["auc"]
    assert loaded.metadata["created_at"] is not None

    result = train_fitted("GOOG", "lightgbm", "classification")
    np.testing.assert_allclose(onnx_predict(loaded.onnx, result.check_rows),
                               result.predict(result.check_rows), rtol=0, atol=1e-5)

    record = registry.resolve("goog", 1)
    assert record.data_start.isoformat() == art.metadata["data_start"]
    assert record.data_end.isoformat() == art.metadata["data_end"]
    assert record.params["model"] == "lightgbm" and record.params["params"]["n_folds"] == 5


def test_versions_count_up_and_latest_is_the_default(registry: ModelRegistry, artifacts) -> None:
    assert registry.register(artifacts["cls"]).version == 1
    assert registry.register(artifacts["reg"]).version == 2
    assert registry.register(artifacts["reg"], "other").version == 1
    assert registry.load("goog").version == 2
    assert registry.load("goog", version=1).task == "classification"
    assert [(m.name, m.latest_version, m.n_versions) for m in registry.list()] == [("goog", 2, 2), ("other", 1, 1)]
    details = registry.show("goog")
    assert [v.version for v in details.versions] == [1, 2] and details.aliases == {}
    assert all(isinstance(v, ModelVersionRecord) and v.created_at is not None for v in details.versions)


def test_register_a_train_result_directly(registry: ModelRegistry, train_fitted) -> None:
    got = registry.register(train_fitted("GOOG", "linear", "classification"), "logit", alias="challenger")
    assert (got.name, got.version, got.metadata["output_name"]) == ("logit", 1, "p_up")
    assert registry.load("logit", alias="challenger").sha256 == got.sha256
    with pytest.raises(MLError, match="needs a model name"):
        registry.register(train_fitted("GOOG", "linear", "classification"))


# ---------------------------------------------------------------------- aliases


def test_aliases_move(registry: ModelRegistry, artifacts) -> None:
    registry.register(artifacts["cls"])
    registry.register(artifacts["reg"])
    assert registry.promote("goog", 1) is None  # champion by default
    assert registry.promote("goog", 2, "challenger") is None
    assert registry.load("goog", alias="champion").version == 1
    assert registry.load("goog", alias="challenger").version == 2
    assert registry.promote("goog", 2, "champion") == 1  # moved: returns where it pointed
    assert registry.load("goog", alias="champion").version == 2
    assert registry.show("goog").aliases == {"challenger": 2, "champion": 2}
    assert registry.list()[0].aliases == {"challenger": 2, "champion": 2}


# ---------------------------------------------------------------------- unknown names


def test_unknown_names(registry: ModelRegistry, artifacts) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no model named 'goog'.*models: none"):
        registry.load("goog")
    registry.register(artifacts["reg"])
    with pytest.raises(ModelNotFoundError, match=r"no model named 'nope'.*models: goog"):
        registry.load("nope")
    with pytest.raises(ModelNotFoundError, match=r"no version 7 \(versions: 1\)"):
        registry.load("goog", version=7)
    with pytest.raises(ModelNotFoundError, match="no alias 'champion'"):
        registry.load("goog", alias="champion")
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.load("nope", alias="champion")
    with pytest.raises(ModelNotFoundError, match="no version 3"):
        registry.promote("goog", 3)
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.show("nope")
    with pytest.raises(ValueError, match="not both"):
        registry.load("goog", version=1, alias="champion")


@pytest.mark.parametrize("name", ["../evil", "", "a/b", ".hidden", "x" * 200])
def test_bad_model_names(registry: ModelRegistry, artifacts, name: str) -> None:
    with pytest.raises(MLError, match="model name"):
        registry.register(dataclasses.replace(artifacts["reg"], name=name))


# ---------------------------------------------------------------------- integrity


def test_tampered_file_is_refused(registry: ModelRegistry, artifacts) -> None:
    registry.register(artifacts["reg"])
    path = registry.models_dir / "goog" / "1.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"sha256.*changed after registration"):
        registry.load("goog")


def test_corrupt_onnx_is_refused_even_with_a_matching_hash(registry: ModelRegistry, backend, artifacts) -> None:
    registry.register(artifacts["reg"])
    path = registry.models_dir / "goog" / "1.onnx"
    junk = b"\x80\x03cos\nsystem\n(S'echo pwned'\ntR."  # a pickle: never to be loaded
    path.write_bytes(junk)
    rewrite_row(backend, "goog", 1, sha256=ModelArtifact.digest(junk))
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        registry.load("goog")


def test_missing_file_and_rows_pointing_elsewhere(registry: ModelRegistry, backend, artifacts) -> None:
    registry.register(artifacts["reg"])
    registry.register(artifacts["reg"])
    (registry.models_dir / "goog" / "1.onnx").unlink()
    with pytest.raises(ModelLoadError, match="is missing"):
        registry.load("goog", version=1)
    rewrite_row(backend, "goog", 2, path="../../outside.onnx")
    with pytest.raises(ModelLoadError, match=r"not an \.onnx file inside"):
        registry.load("goog", version=2)
    rewrite_row(backend, "goog", 2, path="goog/2.pkl")
    with pytest.raises(ModelLoadError, match=r"not an \.onnx file inside"):
        registry.load("goog", version=2)


def test_registering_bad_bytes_writes_nothing(registry: ModelRegistry, artifacts) -> None:
    bad = dataclasses.replace(artifacts["reg"], onnx=b"not onnx", sha256=ModelArtifact.digest(b"not onnx"))
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        registry.register(bad)
    mismatched = dataclasses.replace(artifacts["reg"], sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="does not match its bytes"):
        registry.register(mismatched)
    wrong_width = dataclasses.replace(artifacts["reg"], schema=dataclasses.replace(
        FEATURE_SET, columns=FEATURE_SET.columns[:-1]))
    with pytest.raises(ModelLoadError, match="takes 22 features"):
        registry.register(wrong_width)
    assert registry.list() == []
    assert onnx_files(registry.models_dir / "goog") == []


# ---------------------------------------------------------------------- nothing half-registered


@pytest.fixture
def row_insert_fails(backend: RegistryBackend) -> Iterator[None]:
    """Make the backend refuse the next version row: a real trigger on SQL databases."""
    if isinstance(backend, MemoryRegistryBackend):
        original = backend.add_version

        def refuse(record: ModelVersionRecord) -> ModelVersionRecord:
            raise MLError("row refused")

        backend.add_version = refuse  # type: ignore[method-assign]
        yield
        backend.add_version = original  # type: ignore[method-assign]
        return
    engine = backend.store.engine
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse_model BEFORE INSERT ON model_versions "
                              "BEGIN SELECT RAISE(ABORT, 'row refused'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse_model() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'row refused'; END $$"))
            conn.execute(text("CREATE TRIGGER refuse_model BEFORE INSERT ON model_versions "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_model()"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER refuse_model"))
            else:
                conn.execute(text("DROP TRIGGER refuse_model ON model_versions"))
                conn.execute(text("DROP FUNCTION refuse_model()"))


def test_failed_row_insert_leaves_no_file(registry: ModelRegistry, backend, artifacts, request) -> None:
    registry.register(artifacts["reg"])
    request.getfixturevalue("row_insert_fails")
    with pytest.raises(Exception, match="row refused"):
        registry.register(artifacts["cls"])
    assert onnx_files(registry.models_dir / "goog") == ["1.onnx"]  # v2's file is gone, v1's kept
    assert [v.version for v in backend.list_versions("goog")] == [1]
    assert registry.load("goog").version == 1


def test_a_leftover_file_without_row_is_replaced(registry: ModelRegistry, artifacts) -> None:
    """A crash between file and row leaves an orphan; the next registration of that version replaces it."""
    folder = registry.models_dir / "goog"
    folder.mkdir(parents=True)
    (folder / "1.onnx").write_bytes(b"orphan")
    got = registry.register(artifacts["reg"])
    assert got.version == 1 and registry.load("goog").onnx == artifacts["reg"].onnx

