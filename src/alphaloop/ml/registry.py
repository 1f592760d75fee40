"""The model registry: versioned ONNX files plus one row per version, and movable aliases.

Files live under ``models_dir`` as ``<name>/<version>.onnx``; rows (sha256, feature schema, data
range, parameters, metrics) live in a :class:`RegistryBackend` — the project database through
:class:`alphaloop.store.SqlModelRepository`, or :class:`MemoryRegistryBackend`. The ML layer cannot
import the store (the store sits above it), hence the protocol.

Guarantees:

* ``register`` writes the file atomically (temporary file, fsync, rename into place) before the
  row; if the row cannot be written the file is removed again: a version is
  either fully registered or not at all. Registrations of one name are serialised by a lock file
  (``<name>/.lock``); across hosts the unique (name, version) row is the backstop.
* ``load`` reads only ``.onnx`` files inside ``models_dir``, checks their sha256 against the row and
  validates them with ``onnx.checker``; it never unpickles anything.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from alphaloop.ml.artifact import FeatureSchema, ModelArtifact
from alphaloop.ml.errors import MLError, ModelLoadError, ModelNotFoundError
from alphaloop.ml.features import TASKS

try:  # POSIX; elsewhere registrations of one name must not run concurrently
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CHAMPION, CHALLENGER = "champion", "challenger"
SUFFIX = ".onnx"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# Artefact metadata kept in their own columns; everything else goes to the row's params.
_OWN_COLUMNS = ("metrics", "data_start", "data_end")


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    """One registered version as its row holds it. ``path`` is relative to the models directory."""

    name: str
    version: int
    sha256: str
    path: str
    task: str
    horizon: int
    schema: FeatureSchema
    data_start: pd.Timestamp | None
    data_end: pd.Timestamp | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: pd.Timestamp | None = None


@runtime_checkable
class RegistryBackend(Protocol):
    """Where the rows live. Lookups return None for what does not exist; the registry turns that into
    ``ModelNotFoundError``. ``add_version`` must refuse a (name, version) that exists, and
    ``set_alias`` a version that does not."""

    def add_version(self, record: ModelVersionRecord) -> ModelVersionRecord:
        """Insert the row; return it as stored (``created_at`` set)."""
        ...

    def get_version(self, name: str, version: int) -> ModelVersionRecord | None: ...

    def latest_version(self, name: str) -> ModelVersionRecord | None: ...

    def list_models(self) -> list[str]:
        """Names with at least one version, sorted."""
        ...

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        """Oldest version first."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None: ...

    def get_alias(self, name: str, alias: str) -> int | None: ...

    def aliases(self, name: str) -> dict[str, int]: ...


class MemoryRegistryBackend:
    """Rows in a dict: for tests and throwaway sessions (nothing survives the process)."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, ModelVersionRecord]] = {}
        self._aliases: dict[str, dict[str, int]] = {}

    def add_version(self, record: ModelVersionRecord) -> ModelVersionRecord:
        versions = self._versions.setdefault(record.name, {})
        if record.version in versions:
            raise MLError(f"model {record.name!r} version {record.version} already exists")
        stored = dataclasses.replace(record, params=copy.deepcopy(record.params),
                                     metrics=copy.deepcopy(record.metrics),
                                     created_at=pd.Timestamp.now(tz="UTC"))
        versions[record.version] = stored
        return stored

    def get_version(self, name: str, version: int) -> ModelVersionRecord | None:
        return self._versions.get(name, {}).get(version)

    def latest_version(self, name: str) -> ModelVersionRecord | None:
        versions = self._versions.get(name)
        return versions[max(versions)] if versions else None

    def list_models(self) -> list[str]:
        return sorted(n for n, v in self._versions.items() if v)

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        versions = self._versions.get(name, {})
        return [versions[v] for v in sorted(versions)]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if self.get_version(name, version) is None:
            raise MLError(f"model {name!r} has no version {version}")
        self._aliases.setdefault(name, {})[alias] = version

    def get_alias(self, name: str, alias: str) -> int | None:
        return self._aliases.get(name, {}).get(alias)

    def aliases(self, name: str) -> dict[str, int]:
        return dict(sorted(self._aliases.get(name, {}).items()))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A line of ``list()``: the newest version, how many there are, and where the aliases point."""

    name: str
    latest_version: int
    n_versions: int
    aliases: dict[str, int]


@dataclass(frozen=True, slots=True)
class ModelDetails:
    """``show(name)``: every version, oldest first, and the aliases."""

    name: str
    versions: list[ModelVersionRecord]
    aliases: dict[str, int]


class ModelRegistry:
    """Register, load and promote models; see the module docstring for the guarantees."""

    def __init__(self, models_dir: str | Path, backend: RegistryBackend):
        self.models_dir = Path(models_dir).expanduser()
        self.backend = backend

    def register(self, source: Any, name: str | None = None, *, alias: str | None = None) -> ModelArtifact:
        """Store an artefact (a :class:`ModelArtifact`, or a ``TrainResult``, exported first) as the next
        version of ``name`` (default: the artefact's name); optionally point ``alias`` at it.

        Returns the artefact as ``load`` would: real version, and the row's metadata.
        """
        artifact = self._artifact(source, name)
        name = _check_name(artifact.name)
        if alias is not None:
            _check_alias(alias)
        sha = ModelArtifact.digest(artifact.onnx)
        if artifact.sha256 and artifact.sha256 != sha:
            raise ModelLoadError(f"model {name!r}: the artefact's sha256 {artifact.sha256} does not match its "
                                 f"bytes ({sha})")
        if artifact.task not in TASKS:
            raise MLError(f"model {name!r}: task must be one of {', '.join(TASKS)}, got {artifact.task!r}")
        _check_onnx(artifact.onnx, artifact.schema, f"model {name!r} (to register)")
        meta = artifact.metadata or {}
        folder = self.models_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        with _name_lock(folder):
            latest = self.backend.latest_version(name)
            version = 1 if latest is None else latest.version + 1
            rel = f"{name}/{version}{SUFFIX}"
            path = self.models_dir / rel
            _publish(folder, path, artifact.onnx)
            record = ModelVersionRecord(
                name=name, version=version, sha256=sha, path=rel, task=artifact.task,
                horizon=int(artifact.horizon), schema=artifact.schema,
                data_start=_timestamp(meta.get("data_start")), data_end=_timestamp(meta.get("data_end")),
                params={k: v for k, v in meta.items() if k not in _OWN_COLUMNS},
                metrics=dict(meta.get("metrics") or {}))
            try:
                stored = self.backend.add_version(record)
            except BaseException:
                self._discard(path, record)
                raise
        if alias is not None:
            self.backend.set_alias(name, alias, version)
        return self._artifact_of(stored, artifact.onnx)

    def load(self, name: str, version: int | None = None, alias: str | None = None) -> ModelArtifact:
        """The artefact of ``version``, of the version ``alias`` points at, or (neither) the latest.

        Raises ``ModelNotFoundError`` for an unknown name, version or alias, ``ModelLoadError`` when
        the file is missing, is not a valid ONNX model for its schema, or its sha256 differs from the row's.
        """
        record = self.resolve(name, version, alias)
        path = self._path_of(record)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelLoadError(f"model {name!r} v{record.version}: file {path} is missing") from None
        except OSError as e:
            raise ModelLoadError(f"model {name!r} v{record.version}: cannot read {path} ({e.strerror})") from None
        sha = ModelArtifact.digest(data)
        if sha != record.sha256:
            raise ModelLoadError(f"model {name!r} v{record.version}: {path} has sha256 {sha}, the registry "
                                 f"recorded {record.sha256}: the file was changed after registration")
        _check_onnx(data, record.schema, f"model {name!r} v{record.version} ({path})")
        return self._artifact_of(record, data)

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> ModelVersionRecord:
        """The row ``load`` would use."""
        if version is not None and alias is not None:
            raise ValueError("give a version or an alias, not both")
        if alias is not None:
            target = self.backend.get_alias(name, alias)
            if target is None:
                self._require_model(name)
                known = ", ".join(f"{a} -> v{v}" for a, v in self.backend.aliases(name).items()) or "none"
                raise ModelNotFoundError(f"model {name!r} has no alias {alias!r} (aliases: {known})")
            version = target
        if version is None:
            record = self.backend.latest_version(name)
            if record is None:
                self._require_model(name)
        else:
            record = self.backend.get_version(name, int(version))
            if record is None:
                self._require_model(name)
                known = ", ".join(str(r.version) for r in self.backend.list_versions(name))
                raise ModelNotFoundError(f"model {name!r} has no version {version} (versions: {known})")
        assert record is not None
        return record

    def promote(self, name: str, version: int, alias: str = CHAMPION) -> int | None:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere); return where it pointed before."""
        _check_alias(alias)
        self.resolve(name, version)
        before = self.backend.get_alias(name, alias)
        self.backend.set_alias(name, alias, int(version))
        return before

    def list(self) -> builtins.list[ModelInfo]:
        """Every registered model, by name."""
        out = []
        for name in self.backend.list_models():
            versions = self.backend.list_versions(name)
            if versions:
                out.append(ModelInfo(name, versions[-1].version, len(versions), self.backend.aliases(name)))
        return out

    def show(self, name: str) -> ModelDetails:
        """All versions of ``name`` and its aliases; ``ModelNotFoundError`` if it has none."""
        versions = self.backend.list_versions(name)
        if not versions:
            self._require_model(name)
        return ModelDetails(name, versions, self.backend.aliases(name))

    # ------------------------------------------------------------------ internals

    def _artifact(self, source: Any, name: str | None) -> ModelArtifact:
        if isinstance(source, ModelArtifact):
            return dataclasses.replace(source, name=name) if name else source
        from alphaloop.ml.training import TrainResult  # only when given one: training pulls in sklearn

        if isinstance(source, TrainResult):
            if not name:
                raise MLError("registering a TrainResult needs a model name")
            from alphaloop.ml.export import export_model

            return export_model(source, name)
        raise TypeError(f"register takes a ModelArtifact or a TrainResult, not {type(source).__name__}")

    def _require_model(self, name: str) -> None:
        if self.backend.latest_version(name) is None:
            known = ", ".join(self.backend.list_models()) or "none"
            raise ModelNotFoundError(f"no model named {name!r} is registered (models: {known})")

    def _path_of(self, record: ModelVersionRecord) -> Path:
        """The file of a row, refusing a row that points outside the models directory or at a non-ONNX file."""
        root = self.models_dir.resolve()
        path = (root / record.path).resolve()
        if path.suffix != SUFFIX or not path.is_relative_to(root):
            raise ModelLoadError(f"model {record.name!r} v{record.version}: registry path {record.path!r} is "
                                 f"not an {SUFFIX} file inside {root}")
        return path

    def _discard(self, path: Path, record: ModelVersionRecord) -> None:
        """Undo a publish whose row failed, unless a row (another writer's) now vouches for these bytes."""
        try:
            other = self.backend.get_version(record.name, record.version)
        except Exception:
            other = None
        if other is None or other.sha256 != record.sha256:
            path.unlink(missing_ok=True)

    def _artifact_of(self, record: ModelVersionRecord, data: bytes) -> ModelArtifact:
        meta = dict(record.params)
        meta.update(metrics=record.metrics, data_start=_iso(record.data_start), data_end=_iso(record.data_end),
                    created_at=_iso(record.created_at), path=str(self.models_dir / record.path))
        return ModelArtifact(name=record.name, version=record.version, task=record.task, onnx=data,
                             schema=record.schema, horizon=record.horizon, sha256=record.sha256, metadata=meta)


# ---------------------------------------------------------------------- helpers


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MLError(f"model name {name!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a "
                      f"letter or digit (it names a folder)")
    return name


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise MLError(f"alias {alias!r} must be 1-64 letters, digits, '_' or '-', starting with a letter")
    return alias


def _check_onnx(data: bytes, schema: FeatureSchema, what: str) -> None:
    """Parse and validate the bytes as ONNX, with one float input as wide as the schema."""
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
        onnx.checker.check_model(proto)
    except Exception as e:  # DecodeError, ValidationError: both mean "not a usable ONNX model"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{what}: not a valid ONNX model ({first})") from None
    initialized = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initialized]
    if len(inputs) != 1:
        raise ModelLoadError(f"{what}: expected one input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims else 0
    if len(dims) != 2 or width != len(schema.columns):
        raise ModelLoadError(f"{what}: input {inputs[0].name!r} takes {width or '?'} features, the schema "
                             f"{schema.name} v{schema.version} has {len(schema.columns)}")


@contextmanager
def _name_lock(folder: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(folder / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _publish(folder: Path, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or no file.

    A file already there has no row (the version number came from the rows): the leftover of a
    registration that died between file and row, safe to replace.
    """
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not possible (nor needed) on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _iso(value: pd.Timestamp | dt.datetime | None) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MemoryRegistryBackend",
    "ModelDetails",
    "ModelInfo",
    "ModelRegistry",
    "ModelVersionRecord",
    "RegistryBackend",
]
