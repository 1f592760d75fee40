"""The inference runtime: one ONNX Runtime session per model, chosen down an explicit provider chain.

Chain: TensorRT -> CUDA -> ONNX CPU -> default predictor. ONNX Runtime does not refuse a provider it
cannot load: it warns and quietly runs the session on CPU. So each step builds a session, asks it
which provider actually runs it (``session.get_providers()[0]``), runs one warm-up row, and only then
accepts it; every skipped step keeps its reason (see :meth:`InferenceRuntime.provider_report`).

The default predictor (value 0.0 for regression, P(up)=0.5 for classification, confidence 0) answers
when no ONNX path could be built or when a run raises; its predictions carry ``path=default``, so a
caller always sees that no model answered.

Outputs, chosen once when the session is built:

* regression: the first float tensor output, shape [N] or [N, 1]: the forward return.
* classification: the output named like ``*prob*`` if there is one, else the last float output
  (a label output, int64, is never used: it throws away the probability). An [N, 2] tensor gives
  P(up) in column 1 (sklearn/LightGBM sort classes, so class 1 = up; ``metadata["classes"]``
  overrides), an [N] or [N, 1] tensor is P(up) itself, and a ZipMap output (list of {class: p})
  is read by class key. Export with ``zipmap=False``: the ZipMap path is correct but slow.

Confidence, in [0, 1]:

* classification: ``|2p - 1|`` (0 at a coin flip, 1 at certainty).
* regression: ``tanh(|value| / scale)``: how large the predicted move is against the model's typical
  error. ``scale`` is the ``confidence_scale`` argument, else the validation error the trainer
  stored in ``artifact.metadata`` (first of ``val_rmse``, ``validation_rmse``, ``rmse``, ``val_mae``,
  ``mae``, looked up at the top, under ``metadata["metrics"]`` and under
  ``metadata["metrics"]["overall"]``, where the exporter and the registry put the walk-forward,
  out-of-sample metrics), else 0.01 (a 1% move). A prediction the size of the model's RMSE gets
  0.76; one a tenth of it, 0.10.

Exactness: values are onnxruntime's float32 outputs, widened to float64 unchanged. onnxruntime itself
may differ in the last float32 bit between a one-row and a many-row run (another kernel path) and,
with ``intra_op_threads`` > 1, for tree ensembles between runs under thread contention.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import pandas as pd

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.artifact import ModelArtifact
from alphaloop.ml.errors import InferenceError, InferenceTimeoutError, ModelLoadError, SchemaMismatchError

try:  # without onnxruntime the runtime still answers, with the default predictor, and says why
    import onnxruntime as ort
except ImportError:  # pragma: no cover - exercised only where onnxruntime is absent
    ort = None

log = logging.getLogger(__name__)

#: The full chain, best first. ``cpu`` is ONNX Runtime's CPU provider; the default predictor is
#: always the last resort and is not named here.
PROVIDER_CHAIN: tuple[str, ...] = ("tensorrt", "cuda", "cpu")

_ORT_PROVIDER = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# Providers a step's session is given, in ORT's own priority order: nodes TensorRT cannot take fall
# to CUDA, then CPU (e.g. ai.onnx.ml tree ensembles have only a CPU kernel).
_SESSION_PROVIDERS = {
    "tensorrt": ("tensorrt", "cuda", "cpu"),
    "cuda": ("cuda", "cpu"),
    "cpu": ("cpu",),
}
_ALIASES = {
    "tensorrt": "tensorrt", "trt": "tensorrt", "tensorrtexecutionprovider": "tensorrt",
    "cuda": "cuda", "gpu": "cuda", "cudaexecutionprovider": "cuda",
    "cpu": "cpu", "onnx_cpu": "cpu", "cpuexecutionprovider": "cpu",
}
_PATH = {"tensorrt": InferencePath.TENSORRT, "cuda": InferencePath.CUDA, "cpu": InferencePath.ONNX_CPU}

_SCALE_KEYS = ("val_rmse", "validation_rmse", "rmse", "val_mae", "mae")
DEFAULT_RETURN_SCALE = 0.01
_UP_LABELS = (1, True, "1", "up", "UP", "Up")

#: ``session_factory(model_bytes, session_options, providers, provider_options) -> session``.
#: The default builds an ``onnxruntime.InferenceSession``; tests inject wrappers through it.
SessionFactory = Callable[[bytes, Any, list[str], list[dict[str, Any]]], Any]


def _ort_session(model: bytes, options: Any, providers: list[str], provider_options: list[dict[str, Any]]) -> Any:
    return ort.InferenceSession(model, options, providers=providers, provider_options=provider_options)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass(frozen=True, slots=True)
class ProviderAttempt:
    """One step of the chain: ``status`` is "active", "skipped" (the session ran elsewhere or the
    provider is missing), "failed" (creation or warm-up raised) or "not tried" (an earlier step won)."""

    provider: str
    ort_provider: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """What is running and why: the chain asked for, each step's outcome, the session's providers
    and the runtime's inference failures so far (each answered by the default predictor)."""

    model: str
    version: int
    path: InferencePath
    requested: tuple[str, ...]
    attempts: tuple[ProviderAttempt, ...]
    session_providers: tuple[str, ...]
    available_providers: tuple[str, ...]
    onnxruntime_version: str
    output: str
    inference_failures: int = 0
    last_failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "path": self.path.value,
            "requested": list(self.requested),
            "attempts": [{"provider": a.provider, "ort_provider": a.ort_provider, "status": a.status,
                          "reason": a.reason} for a in self.attempts],
            "session_providers": list(self.session_providers),
            "available_providers": list(self.available_providers),
            "onnxruntime_version": self.onnxruntime_version, "output": self.output,
            "inference_failures": self.inference_failures, "last_failure": self.last_failure,
        }

    def __str__(self) -> str:
        lines = [f"model {self.model!r} v{self.version}: path {self.path.value} "
                 f"(onnxruntime {self.onnxruntime_version}; output {self.output})"]
        lines += [f"  {a.provider:<9} {a.status:<9} {a.reason}" for a in self.attempts]
        if self.inference_failures:
            lines.append(f"  {self.inference_failures} inference failure(s) answered by the default "
                         f"predictor; last: {self.last_failure}")
        return "\n".join(lines)


class PredictionBatch(Sequence[Prediction]):
    """The answer to a batch: numpy arrays for vectorised use, and a ``Sequence[Prediction]``.

    Prediction objects are built on access, not up front: building 1,024 frozen dataclasses costs
    about as much as running a small tree model on 1,024 rows; ``confidences`` too is computed on
    first use (a caller may want only the values). ``latency_ms`` is the whole call's.
    Rows can differ in path and ``cached`` (a batch served partly from cache): ``paths`` then holds
    one path per row, else every row has ``path``.
    """

    __slots__ = ("_confidences", "_paths", "cached", "latency_ms", "model", "path", "values", "version")

    def __init__(self, values: np.ndarray, confidences: np.ndarray | Callable[[], np.ndarray], *, model: str,
                 version: int, path: InferencePath, latency_ms: float, cached: np.ndarray | None = None,
                 paths: Sequence[InferencePath] | None = None):
        self.values = values
        self._confidences = confidences
        self.model = model
        self.version = version
        self.path = path
        self.latency_ms = latency_ms
        self.cached = np.zeros(len(values), dtype=bool) if cached is None else cached
        self._paths = paths

    @property
    def confidences(self) -> np.ndarray:
        c = self._confidences
        if callable(c):  # computed once; two threads racing here compute the same array
            c = self._confidences = c()
        return c

    def __len__(self) -> int:
        return len(self.values)

    def _item(self, i: int) -> Prediction:
        return Prediction(float(self.values[i]), float(self.confidences[i]), self.model, self.version,
                          self.path if self._paths is None else self._paths[i], self.latency_ms,
                          bool(self.cached[i]))

    @overload
    def __getitem__(self, i: int) -> Prediction: ...
    @overload
    def __getitem__(self, i: slice) -> list[Prediction]: ...
    def __getitem__(self, i: int | slice) -> Prediction | list[Prediction]:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a batch of {n}")
        return self._item(i % n if i < 0 else i)

    def __iter__(self) -> Iterator[Prediction]:
        model, version, latency = self.model, self.version, self.latency_ms
        paths = itertools.repeat(self.path) if self._paths is None else self._paths
        for v, c, p, k in zip(self.values.tolist(), self.confidences.tolist(), paths, self.cached.tolist()):
            yield Prediction(v, c, model, version, p, latency, k)

    @property
    def paths(self) -> list[InferencePath]:
        return [self.path] * len(self) if self._paths is None else list(self._paths)

    def __repr__(self) -> str:
        return (f"PredictionBatch(n={len(self)}, model={self.model!r}, version={self.version}, "
                f"path={self.path.value}, cached={int(self.cached.sum())}, latency_ms={self.latency_ms:.3f})")


class InferenceRuntime:
    """Serves one model. Thread-safe: one session answers many threads (ONNX Runtime's ``run`` is
    re-entrant and releases the GIL); nothing here is mutated after construction except counters.

    ``providers``: the chain to try, best first (names: tensorrt, cuda, cpu). ``provider_options``:
    per provider, e.g. ``{"cuda": {"device_id": 1}, "tensorrt": {"trt_fp16_enable": True}}``.
    ``fallback_on_error``: a run that raises answers with the default predictor (recorded in the
    prediction's path and the report) instead of raising :class:`InferenceError`.
    ``strict``: raise :class:`ModelLoadError` instead of falling back to the default predictor when
    no ONNX path works. ``warmup``: run one all-zero row on each candidate session before accepting it
    (GPU providers can load lazily and fail only on the first run).
    """

    def __init__(self, artifact: ModelArtifact, providers: Sequence[str] = PROVIDER_CHAIN, *,
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 provider_options: Mapping[str, Mapping[str, Any]] | None = None,
                 confidence_scale: float | None = None, fallback_on_error: bool = True,
                 strict: bool = False, warmup: bool = True, timeout_workers: int = 4,
                 session_factory: SessionFactory | None = None):
        if artifact.task not in ("regression", "classification"):
            raise ModelLoadError(f"model {artifact.name!r} v{artifact.version}: task {artifact.task!r} is "
                                 f"not 'regression' or 'classification'")
        self.artifact = artifact
        self.name = artifact.name
        self.version = artifact.version
        self.task = artifact.task
        self.schema = artifact.schema
        self.columns: tuple[str, ...] = tuple(artifact.schema.columns)
        self.n_features = len(self.columns)
        self.fallback_on_error = fallback_on_error
        self.requested = tuple(self._canonical(p) for p in providers)
        self._provider_options = {self._canonical(k): dict(v) for k, v in (provider_options or {}).items()}
        self._is_classifier = self.task == "classification"
        self._default_value = 0.5 if self._is_classifier else 0.0
        self._scale = self._confidence_scale(confidence_scale)
        self._up_index, self._up_key = self._up_class()
        self._timeout_workers = timeout_workers
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._last_failure: str | None = None
        self.session: Any = None
        self._closed = False
        self._input_name = ""
        self._output_name = ""
        self._fetch: list[str] = []
        self._run_options: Any = None
        self._output_is_map = False
        self._output_desc = "none (default predictor)"
        self._path = InferencePath.DEFAULT
        self._attempts: list[ProviderAttempt] = []
        self._build(session_factory or _ort_session, intra_op_threads, inter_op_threads, warmup)
        if self._path is InferencePath.DEFAULT:
            if strict:
                raise ModelLoadError(f"no ONNX path works:\n{self.provider_report()}")
            log.warning("model %r v%s answers with the default predictor:\n%s", self.name, self.version,
                        self.provider_report())

    # ---- construction -------------------------------------------------------------------------

    @staticmethod
    def _canonical(provider: str) -> str:
        key = _ALIASES.get(provider.strip().lower())
        if key is None:
            raise ValueError(f"unknown provider {provider!r}: expected one of {', '.join(PROVIDER_CHAIN)}")
        return key

    def _confidence_scale(self, given: float | None) -> float:
        if given is not None:
            if not (given > 0 and math.isfinite(given)):
                raise ValueError(f"confidence_scale must be a positive number, got {given!r}")
            return float(given)
        meta = self.artifact.metadata or {}
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), Mapping) else {}
        overall = metrics.get("overall") if isinstance(metrics.get("overall"), Mapping) else {}
        for source in (meta, metrics, overall):
            for key in _SCALE_KEYS:
                v = source.get(key)
                if isinstance(v, int | float) and math.isfinite(v) and v > 0:
                    return float(v)
        return DEFAULT_RETURN_SCALE

    def _up_class(self) -> tuple[int, Any]:
        """Index of the "up" class in a probabilities tensor and its key in a ZipMap dict."""
        classes = (self.artifact.metadata or {}).get("classes")
        if isinstance(classes, list | tuple) and len(classes) == 2:
            for label in _UP_LABELS:
                if label in classes:
                    return classes.index(label), classes[classes.index(label)]
            return 1, classes[1]
        return 1, 1

    def _build(self, factory: SessionFactory, intra: int | None, inter: int | None, warmup: bool) -> None:
        if ort is None:
            self._attempts = [ProviderAttempt(p, _ORT_PROVIDER[p], "failed", "onnxruntime is not installed")
                              for p in self.requested]
            return
        if ModelArtifact.digest(self.artifact.onnx) != self.artifact.sha256:
            # Never load bytes that are not the ones the registry recorded.
            self._attempts = [ProviderAttempt(p, _ORT_PROVIDER[p], "failed",
                                              "model bytes do not match the artifact's sha256")
                              for p in self.requested]
            return
        options = ort.SessionOptions()
        # Errors only while loading: a GPU provider that cannot load says why on stderr (the chain records
        # the outcome). Runs log nothing (``_run_options``): a failed run surfaces as an exception that
        # the failure counter records and logs, rate-limited; one stderr line per run would flood a loop.
        options.log_severity_level = 3
        if intra is not None:
            options.intra_op_num_threads = intra
        if inter is not None:
            options.inter_op_num_threads = inter
        available = set(ort.get_available_providers())
        for i, step in enumerate(self.requested):
            ep = _ORT_PROVIDER[step]
            chain = [_ORT_PROVIDER[s] for s in _SESSION_PROVIDERS[step]]
            chain_opts = [dict(self._provider_options.get(s, {})) for s in _SESSION_PROVIDERS[step]]
            missing = "" if ep in available else f"; {ep} is not in this onnxruntime build " \
                                                  f"(available: {', '.join(sorted(available))})"
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    session = factory(self.artifact.onnx, options, chain, chain_opts)
            except Exception as e:
                self._attempts.append(ProviderAttempt(step, ep, "failed",
                                                      f"session creation failed: {_first_line(e)}{missing}"))
                continue
            active = tuple(session.get_providers())
            if not active or active[0] != ep:
                said = "; ".join(str(w.message) for w in caught)
                reason = f"onnxruntime ran the session on {active[0] if active else 'nothing'}" + missing
                if said and not missing:
                    reason += f" ({said})"
                self._attempts.append(ProviderAttempt(step, ep, "skipped", reason))
                continue
            try:
                self._bind(session)
            except (ModelLoadError, SchemaMismatchError) as e:
                # The model itself is wrong for its schema: no other provider will do better.
                self._attempts.append(ProviderAttempt(step, ep, "failed", str(e)))
                break
            if warmup:
                try:
                    self._run_session(session, np.zeros((1, self.n_features), dtype=np.float32), None)
                except Exception as e:
                    self._attempts.append(ProviderAttempt(step, ep, "failed",
                                                          f"warm-up inference failed: {_first_line(e)}"))
                    continue
            self.session = session
            self._path = _PATH[step]
            self._run_options = self.new_run_options()  # shared by untimed runs: never terminated
            self._attempts.append(ProviderAttempt(step, ep, "active",
                                                  f"session runs on {', '.join(active)}"))
            self._attempts += [ProviderAttempt(s, _ORT_PROVIDER[s], "not tried", f"{step} answered first")
                               for s in self.requested[i + 1:]]
            return
        self._output_desc = "none (default predictor)"  # a rejected candidate may have bound one
        tried = {a.provider for a in self._attempts}
        self._attempts += [ProviderAttempt(s, _ORT_PROVIDER[s], "not tried", "the model cannot be served")
                           for s in self.requested if s not in tried]

    def _bind(self, session: Any) -> None:
        """Pick the input and the output to read; refuse a model that does not fit its schema."""
        where = f"model {self.name!r} v{self.version}"
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"{where} has {len(inputs)} inputs; the runtime feeds one float32 "
                                 f"[N, {self.n_features}] tensor")
        inp = inputs[0]
        if inp.type != "tensor(float)":
            raise ModelLoadError(f"{where}: input {inp.name!r} is {inp.type}, expected tensor(float)")
        shape = list(inp.shape or [])
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != self.n_features):
            raise SchemaMismatchError(f"{where}: ONNX input {inp.name!r} has shape {shape} but the feature "
                                      f"schema {self.schema.name!r} v{self.schema.version} has "
                                      f"{self.n_features} columns")
        outputs = session.get_outputs()
        floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
        maps = [o for o in outputs if o.type.startswith("seq(map(")]
        if self._is_classifier:
            named = [o for o in floats + maps if "prob" in o.name.lower()]
            chosen = named[0] if named else (floats[-1] if floats else (maps[0] if maps else None))
        else:
            chosen = floats[0] if floats else None
        if chosen is None:
            raise ModelLoadError(f"{where} has no float output to read (outputs: "
                                 f"{[(o.name, o.type) for o in outputs]})")
        dims = list(chosen.shape or []) if not chosen.type.startswith("seq") else []
        last = dims[-1] if len(dims) == 2 else None
        if (isinstance(last, int) and last not in (1, 2)) or (last == 2 and not self._is_classifier):
            raise ModelLoadError(f"{where}: output {chosen.name!r} has shape {dims}; expected [N], [N, 1]"
                                 + (" or [N, 2] (binary probabilities)" if self._is_classifier else ""))
        self._input_name = inp.name
        self._output_name = chosen.name
        self._fetch = [chosen.name]  # fetch only what is read: a label output would be built for nothing
        self._output_is_map = chosen.type.startswith("seq(map(")
        self._output_desc = f"{chosen.name!r} {chosen.type} {dims or ''}".rstrip()

    # ---- inference core -----------------------------------------------------------------------

    def _run_session(self, session: Any, x: np.ndarray, run_options: Any) -> np.ndarray:
        """One ``session.run`` on a validated float32 [N, n] matrix -> float64 [N] model values."""
        out = session.run(self._fetch, {self._input_name: x}, run_options)[0]
        n = x.shape[0]
        if self._output_is_map:  # ZipMap: a list of {class: probability}
            values = np.fromiter((row[self._up_key] for row in out), dtype=np.float64, count=len(out))
        else:
            a = np.asarray(out)
            if a.ndim == 2:
                if a.shape[1] == 1:
                    a = a[:, 0]
                elif a.shape[1] == 2 and self._is_classifier:
                    a = a[:, self._up_index]
                else:
                    raise InferenceError(f"output {self._output_name!r} has shape {a.shape}")
            elif a.ndim != 1:
                raise InferenceError(f"output {self._output_name!r} has shape {a.shape}")
            values = a.astype(np.float64)
        if values.shape[0] != n:
            raise InferenceError(f"output {self._output_name!r} has {values.shape[0]} rows for {n} inputs")
        if not np.isfinite(values).all():
            raise InferenceError(f"model produced a non-finite output for finite inputs ({values[:5]}...)")
        return values

    def infer(self, x: np.ndarray, run_options: Any = None) -> tuple[np.ndarray, InferencePath]:
        """Model values for a validated matrix (from :meth:`prepare_batch`), and the path that answered.

        A run that raises is answered by the default predictor (``fallback_on_error``) or raised as
        :class:`InferenceError`; a run terminated by a timeout is always raised.
        """
        session = self.session
        if session is None:
            return np.full(x.shape[0], self._no_session()), InferencePath.DEFAULT
        try:
            return self._run_session(session, x, run_options or self._run_options), self._path
        except Exception as e:
            return np.full(x.shape[0], self._failed(e, run_options)), InferencePath.DEFAULT

    def infer_one(self, x: np.ndarray, run_options: Any = None) -> tuple[float, InferencePath]:
        """:meth:`infer` for a single validated [1, n] row, in Python scalars: a handful of numpy calls
        on a one-element array cost as much as the model run itself. Same values as :meth:`infer`."""
        session = self.session
        if session is None:
            return self._no_session(), InferencePath.DEFAULT
        try:
            out = session.run(self._fetch, {self._input_name: x}, run_options or self._run_options)[0]
            if self._output_is_map:
                if len(out) != 1:
                    raise InferenceError(f"output {self._output_name!r} has {len(out)} rows for 1 input")
                value = float(out[0][self._up_key])
            elif out.size == 1:
                value = float(out.item())
            elif out.shape == (1, 2) and self._is_classifier:
                value = float(out.item(self._up_index))
            else:
                raise InferenceError(f"output {self._output_name!r} has shape {out.shape} for 1 input")
            if not math.isfinite(value):
                raise InferenceError(f"model produced a non-finite output ({value}) for finite inputs")
            return value, self._path
        except Exception as e:
            return self._failed(e, run_options), InferencePath.DEFAULT

    def _no_session(self) -> float:
        if self._closed:
            raise InferenceError(f"model {self.name!r} v{self.version}: the runtime is closed")
        return self._default_value

    def _failed(self, e: Exception, run_options: Any) -> float:
        """Record a failed run; answer the default value or raise, as configured."""
        if run_options is not None and run_options.terminate:
            raise InferenceTimeoutError("inference terminated after its deadline") from e
        with self._lock:
            self._failures += 1
            self._last_failure = _first_line(e)
            count = self._failures
        if count == 1 or count % 1000 == 0:
            log.warning("model %r v%s: inference failed (%d so far): %s", self.name, self.version,
                        count, _first_line(e))
        if not self.fallback_on_error:
            if isinstance(e, InferenceError):
                raise e
            raise InferenceError(f"model {self.name!r} v{self.version} ({self._path.value}): "
                                 f"{_first_line(e)}") from e
        return self._default_value

    def new_run_options(self) -> Any:
        """A fresh ``RunOptions`` for :meth:`infer`: setting its ``terminate`` stops that run early."""
        if self.session is None:
            return None
        options = ort.RunOptions()
        options.log_severity_level = 4
        return options

    def confidences(self, values: np.ndarray, path: InferencePath | None = None) -> np.ndarray:
        """Vectorised confidence for model values (0 for the default predictor)."""
        if path is InferencePath.DEFAULT:
            return np.zeros(len(values))
        if self._is_classifier:
            return np.clip(np.abs(2.0 * values - 1.0), 0.0, 1.0)
        return np.tanh(np.abs(values) / self._scale)

    def confidence(self, value: float, path: InferencePath) -> float:
        """Scalar twin of :meth:`confidences`, bit-for-bit the same (hence numpy's tanh, not math's)."""
        if path is InferencePath.DEFAULT:
            return 0.0
        if self._is_classifier:
            return min(1.0, max(0.0, abs(2.0 * value - 1.0)))
        return float(np.tanh(abs(value) / self._scale))

    # ---- input validation ---------------------------------------------------------------------

    def _schema_error(self, got: Sequence[Any]) -> SchemaMismatchError:
        expected = self.columns
        got = [str(g) for g in got]
        head = (f"model {self.name!r} v{self.version} expects {len(expected)} features of feature set "
                f"{self.schema.name!r} v{self.schema.version}; got {len(got)}")
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in set(expected)]
        parts = []
        if missing:
            parts.append(f"missing {missing[:10]}")
        if extra:
            parts.append(f"unexpected {extra[:10]}")
        if not parts:
            i = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(got), len(expected)))
            if i < min(len(got), len(expected)):
                parts.append(f"wrong order: position {i} is {got[i]!r}, expected {expected[i]!r}")
            else:
                parts.append("duplicate columns")
        return SchemaMismatchError(f"{head}: {'; '.join(parts)}")

    def _count_error(self, shape: tuple[int, ...], what: str) -> SchemaMismatchError:
        return SchemaMismatchError(f"model {self.name!r} v{self.version} expects {what} with "
                                   f"{self.n_features} features ({', '.join(self.columns[:5])}"
                                   f"{', ...' if self.n_features > 5 else ''}); got an array of shape {shape}")

    def _check_finite(self, x: np.ndarray) -> None:
        if not np.isfinite(x).all():
            r, c = (int(v[0]) for v in np.nonzero(~np.isfinite(x)))
            raise InferenceError(f"model {self.name!r} v{self.version}: feature {self.columns[c]!r} of row {r} "
                                 f"is {x[r, c]} (after float32 conversion); features must be finite")

    def _as_float32(self, data: Any) -> np.ndarray:
        try:
            return np.ascontiguousarray(data, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InferenceError(f"model {self.name!r} v{self.version}: features are not numeric: {e}") from e

    def prepare_row(self, features: Mapping[str, float] | pd.Series | np.ndarray, *,
                    check_finite: bool = True) -> np.ndarray:
        """Validate one row -> float32 [1, n]. A mapping (or Series) must name exactly the schema's
        columns in the schema's order; a bare array is positional and only its length is checked.
        ``check_finite=False`` is for a cache lookup keyed on the row's bytes: a non-finite row is never
        stored, so it cannot hit, and its miss goes through :meth:`predict`, which checks."""
        if isinstance(features, np.ndarray):
            x = features if features.ndim == 2 else features.reshape(1, -1)
            if x.ndim != 2 or x.shape != (1, self.n_features):
                raise self._count_error(features.shape, "one row")
            x = self._as_float32(x)
        elif isinstance(features, Mapping):
            if tuple(features) != self.columns:
                raise self._schema_error(list(features))
            try:
                x = np.array(list(features.values()), dtype=np.float32).reshape(1, -1)
            except (TypeError, ValueError) as e:
                raise InferenceError(f"model {self.name!r} v{self.version}: features are not numeric: "
                                     f"{e}") from e
        elif isinstance(features, pd.Series):
            if tuple(features.index) != self.columns:
                raise self._schema_error(list(features.index))
            x = self._as_float32(features.to_numpy()).reshape(1, -1)
        else:
            raise TypeError(f"features must be a mapping of name -> value, a pandas Series or a numpy "
                            f"array, not {type(features).__name__}")
        if check_finite:
            self._check_finite(x)
        return x

    def prepare_batch(self, rows: np.ndarray | pd.DataFrame | Sequence[Mapping[str, float]]) -> np.ndarray:
        """Validate many rows -> C-contiguous float32 [N, n] (no copy when already in that form)."""
        if isinstance(rows, pd.DataFrame):
            if tuple(rows.columns) != self.columns:
                raise self._schema_error(list(rows.columns))
            x = self._as_float32(rows.to_numpy())
        elif isinstance(rows, np.ndarray):
            if rows.ndim != 2 or rows.shape[1] != self.n_features:
                raise self._count_error(rows.shape, "a 2-D array [N, n]")
            x = self._as_float32(rows)
        elif isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
            if not rows:
                return np.empty((0, self.n_features), dtype=np.float32)
            return np.concatenate([self.prepare_row(r) for r in rows])
        else:
            raise TypeError(f"rows must be a DataFrame, a 2-D numpy array or a sequence of mappings, "
                            f"not {type(rows).__name__}")
        self._check_finite(x)
        return x

    # ---- public prediction API ----------------------------------------------------------------

    def _timed(self, x: np.ndarray, timeout: float) -> tuple[np.ndarray, InferencePath]:
        """Run on a worker thread so the caller gets control back at the deadline; the abandoned run is
        told to stop (``RunOptions.terminate``) so it does not keep a core busy."""
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        if self.session is None:
            return self.infer(x)
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        self._timeout_workers, thread_name_prefix=f"alphaloop-infer-{self.name}")
        run_options = self.new_run_options()
        future = self._executor.submit(self.infer, x, run_options)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            run_options.terminate = True
            future.cancel()
            raise InferenceTimeoutError(f"model {self.name!r} v{self.version} ({self._path.value}) did not "
                                        f"answer {x.shape[0]} row(s) within {timeout * 1000:.1f} ms") from None

    def predict(self, features: Mapping[str, float] | pd.Series | np.ndarray, *,
                timeout: float | None = None) -> Prediction:
        """One row -> one :class:`Prediction`. ``timeout`` in seconds raises :class:`InferenceTimeoutError`."""
        t0 = time.perf_counter()
        x = self.prepare_row(features)
        if timeout is None:
            value, path = self.infer_one(x)
        else:
            values, path = self._timed(x, timeout)
            value = float(values[0])
        return Prediction(value, self.confidence(value, path), self.name, self.version, path,
                          (time.perf_counter() - t0) * 1000.0)

    def predict_batch(self, rows: np.ndarray | pd.DataFrame | Sequence[Mapping[str, float]], *,
                      timeout: float | None = None) -> PredictionBatch:
        """Many rows in one ``session.run`` -> a :class:`PredictionBatch` in row order."""
        t0 = time.perf_counter()
        x = self.prepare_batch(rows)
        if x.shape[0] == 0:
            values, path = np.empty(0), self._path
        else:
            values, path = self.infer(x) if timeout is None else self._timed(x, timeout)
        return PredictionBatch(values, lambda: self.confidences(values, path), model=self.name,
                               version=self.version, path=path, latency_ms=(time.perf_counter() - t0) * 1000.0)

    def default_prediction(self) -> Prediction:
        """What the default predictor answers (for callers that must answer without running)."""
        return Prediction(self._default_value, 0.0, self.name, self.version, InferencePath.DEFAULT, 0.0)

    # ---- introspection and lifetime -----------------------------------------------------------

    @property
    def path(self) -> InferencePath:
        """The path the runtime serves on (a single failed run may still answer ``default``)."""
        return self._path

    def provider_report(self) -> ProviderReport:
        with self._lock:
            failures, last = self._failures, self._last_failure
        return ProviderReport(
            model=self.name, version=self.version, path=self._path, requested=self.requested,
            attempts=tuple(self._attempts),
            session_providers=tuple(self.session.get_providers()) if self.session is not None else (),
            available_providers=tuple(ort.get_available_providers()) if ort is not None else (),
            onnxruntime_version=ort.__version__ if ort is not None else "not installed",
            output=self._output_desc, inference_failures=failures, last_failure=last)

    def close(self) -> None:
        """Release the session and the timeout workers; later predictions raise :class:`InferenceError`."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._closed = True
        self.session = None

    def __enter__(self) -> InferenceRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"InferenceRuntime({self.name!r} v{self.version}, task={self.task}, path={self._path.value})"


__all__ = ["DEFAULT_RETURN_SCALE", "PROVIDER_CHAIN", "InferenceRuntime", "PredictionBatch",
           "ProviderAttempt", "ProviderReport", "SessionFactory"]
