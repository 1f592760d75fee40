"""The model registry's rows and the prediction log, in the project database.

:class:`SqlModelRepository` is the SQL implementation of :class:`alphaloop.ml.registry.RegistryBackend`
(the ML layer defines the protocol because it cannot import the store). It shares its
:class:`Store`'s engine and transactions: every method is one transaction, and failures surface as
:class:`~alphaloop.core.errors.StoreError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from alphaloop.core.errors import StoreError
from alphaloop.ml.artifact import FeatureSchema
from alphaloop.ml.registry import ModelRegistry, ModelVersionRecord
from alphaloop.store import codec
from alphaloop.store.models import ModelAlias, ModelVersion, PredictionRecord
from alphaloop.store.repository import Store

PREDICTION_COLUMNS = ("id", "model", "version", "instrument", "time", "horizon", "value", "confidence",
                      "path", "strategy", "created_at")
_PREDICTION_FIELDS = ("model", "version", "instrument", "time", "horizon", "value", "confidence", "path")


class SqlModelRepository:
    """Model versions, aliases and prediction records in ``store``'s database (``Store`` migrates it)."""

    def __init__(self, store: Store):
        self.store = store

    def registry(self, models_dir: str | Path) -> ModelRegistry:
        """A registry keeping its files under ``models_dir`` (usually ``settings.models_dir``) and rows here."""
        return ModelRegistry(models_dir, self)

    # ------------------------------------------------------------------ RegistryBackend

    def add_version(self, record: ModelVersionRecord) -> ModelVersionRecord:
        with self.store._session(f"cannot register model {record.name} version {record.version}") as s:
            row = ModelVersion(
                name=record.name, version=int(record.version), sha256=record.sha256, path=record.path,
                task=record.task, horizon=int(record.horizon), feature_schema=record.schema.to_dict(),
                data_start=codec.utc_datetime(record.data_start), data_end=codec.utc_datetime(record.data_end),
                params=codec.jsonable(record.params), metrics=codec.jsonable(record.metrics),
                created_at=self.store._now())
            s.add(row)
            s.flush()
            return _record(row)

    def get_version(self, name: str, version: int) -> ModelVersionRecord | None:
        with self.store._session(f"cannot read model {name} version {version}") as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.name == name,
                                                      ModelVersion.version == int(version)))
            return None if row is None else _record(row)

    def latest_version(self, name: str) -> ModelVersionRecord | None:
        with self.store._session(f"cannot read model {name}") as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.name == name)
                           .order_by(ModelVersion.version.desc()).limit(1))
            return None if row is None else _record(row)

    def list_models(self) -> list[str]:
        with self.store._session("cannot list models") as s:
            return list(s.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name)))

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        with self.store._session(f"cannot list versions of model {name}") as s:
            rows = s.scalars(select(ModelVersion).where(ModelVersion.name == name)
                             .order_by(ModelVersion.version))
            return [_record(r) for r in rows]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with self.store._session(f"cannot point alias {alias} of model {name} at version {version}") as s:
            exists = s.scalar(select(func.count()).select_from(ModelVersion)
                              .where(ModelVersion.name == name, ModelVersion.version == int(version)))
            if not exists:
                raise StoreError(f"model {name!r} has no version {version}")
            values = {"name": name, "alias": alias, "version": int(version), "updated_at": self.store._now()}
            dialect = s.get_bind().dialect.name
            if dialect in ("postgresql", "sqlite"):
                # Upsert: two processes moving the same alias at once both succeed, the last one wins.
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as upsert
                else:
                    from sqlalchemy.dialects.sqlite import insert as upsert
                stmt = upsert(ModelAlias).values(**values)
                s.execute(stmt.on_conflict_do_update(
                    index_elements=["name", "alias"],
                    set_={"version": stmt.excluded.version, "updated_at": stmt.excluded.updated_at}))
            else:
                row = s.get(ModelAlias, (name, alias))
                if row is None:
                    s.add(ModelAlias(**values))
                else:
                    row.version, row.updated_at = values["version"], values["updated_at"]

    def get_alias(self, name: str, alias: str) -> int | None:
        with self.store._session(f"cannot read alias {alias} of model {name}") as s:
            return s.scalar(select(ModelAlias.version).where(ModelAlias.name == name, ModelAlias.alias == alias))

    def aliases(self, name: str) -> dict[str, int]:
        with self.store._session(f"cannot read aliases of model {name}") as s:
            rows = s.execute(select(ModelAlias.alias, ModelAlias.version)
                             .where(ModelAlias.name == name).order_by(ModelAlias.alias))
            return {alias: version for alias, version in rows}

    # ------------------------------------------------------------------ predictions

    def record_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store predictions in one transaction; return how many.

        Each row maps ``model, version, instrument, time, horizon, value, confidence, path``
        (``confidence`` may be omitted). A row may instead carry a served ``Prediction`` under
        ``"prediction"`` (its value, confidence, model, version and path), next to ``instrument``,
        ``time`` and ``horizon``. A malformed row refuses the whole batch, naming it.
        """
        batch = []
        for i, row in enumerate(rows):
            try:
                batch.append(_prediction_row(row))
            except (KeyError, TypeError, ValueError) as e:
                raise StoreError(f"cannot record predictions: row {i}: {e}") from e
        if not batch:
            return 0
        with self.store._session(f"cannot record {len(batch)} predictions") as s:
            now = self.store._now()
            s.execute(insert(PredictionRecord), [{**r, "created_at": now} for r in batch])
        return len(batch)

    def prediction_records(self, model: str | None = None, version: int | None = None,
                           instrument: str | None = None) -> pd.DataFrame:
        """Recorded predictions matching the filters, oldest bar first, as a DataFrame with the columns
        of ``PREDICTION_COLUMNS`` (times UTC)."""
        stmt = select(*(getattr(PredictionRecord, c) for c in PREDICTION_COLUMNS))
        if model is not None:
            stmt = stmt.where(PredictionRecord.model == model)
        if version is not None:
            stmt = stmt.where(PredictionRecord.version == int(version))
        if instrument is not None:
            stmt = stmt.where(PredictionRecord.instrument == instrument)
        stmt = stmt.order_by(PredictionRecord.time, PredictionRecord.id)
        with self.store._session("cannot read prediction records") as s:
            rows = s.execute(stmt).all()
        df = pd.DataFrame([tuple(r) for r in rows], columns=list(PREDICTION_COLUMNS))
        for c in ("id", "version", "horizon"):
            df[c] = df[c].astype(np.int64)
        for c in ("value", "confidence"):
            df[c] = df[c].astype(np.float64)
        for c in ("time", "created_at"):  # microseconds: what both databases keep
            df[c] = pd.to_datetime(df[c], utc=True).dt.as_unit("us")
        return df


# ---------------------------------------------------------------------- encoding


def _record(row: ModelVersion) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=row.name, version=row.version, sha256=row.sha256, path=row.path, task=row.task,
        horizon=row.horizon, schema=FeatureSchema.from_dict(row.feature_schema),
        data_start=None if row.data_start is None else pd.Timestamp(row.data_start),
        data_end=None if row.data_end is None else pd.Timestamp(row.data_end),
        params=dict(row.params), metrics=_decode_nonfinite(row.metrics),
        created_at=pd.Timestamp(row.created_at))


def _decode_nonfinite(obj: Any) -> Any:
    """Undo :func:`codec.jsonable`'s tagging of NaN/inf at any depth (metrics nest per fold and bucket)."""
    if isinstance(obj, dict):
        return {k: _decode_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_nonfinite(v) for v in obj]
    return codec.decode_metrics({"v": obj})["v"] if isinstance(obj, str) else obj


def _prediction_row(row: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise TypeError(f"expected a mapping, got {type(row).__name__}")
    values: dict[str, Any] = {}
    served = row.get("prediction")
    if served is not None:
        values.update({k: getattr(served, k) for k in ("value", "confidence", "model", "version", "path")})
    values.update({k: row[k] for k in _PREDICTION_FIELDS if k in row})
    values.setdefault("confidence", None)
    missing = [k for k in _PREDICTION_FIELDS if k not in values]
    if missing:
        raise KeyError(f"missing {', '.join(missing)}")
    value = float(values["value"])
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {value}")
    confidence = values["confidence"]
    if confidence is not None:
        confidence = float(confidence)
        if not math.isfinite(confidence):
            raise ValueError(f"confidence must be finite or None, got {confidence}")
    time = codec.utc_datetime(values["time"])
    if time is None:
        raise ValueError("time is missing")
    path = values["path"]
    return {"model": str(values["model"]), "version": int(values["version"]),
            "instrument": str(values["instrument"]), "time": time, "horizon": int(values["horizon"]),
            "value": value, "confidence": confidence,
            "path": str(getattr(path, "value", path)),
            "strategy": None if row.get("strategy") is None else str(row["strategy"])}


__all__ = ["PREDICTION_COLUMNS", "SqlModelRepository"]
