"""The strategy-evaluation model: predicts a strategy's out-of-sample ``backtest_score`` from its
spec and the market regime, so discovery can pre-screen candidates before backtesting them.

Inputs, one row per (spec, regime), in the order of the model's :class:`FeatureSchema` columns:

* ``family=<name>``: one-hot of the strategy family (``spec.name``);
* ``param:<family>|<param>``: a numeric or boolean parameter of that family (0 for other families);
* ``param:<family>|<param>=<value>``: one-hot of a string parameter's value;
* ``regime:<feature>``: the :data:`~alphaloop.discovery.regime.REGIME_FEATURES`.

The learner is a small LightGBM regressor. It is exported to ONNX right after fitting (checked
against the native model) and every prediction goes through ONNX Runtime on the CPU, before and
after a trip through the model registry, so a reloaded model predicts exactly what it did when
trained. Outputs are clipped to [0, 1] (they are used as ``ml_confidence``).

Held-out records are chosen by a hash of their id (:func:`is_holdout`), never at random: the same
record is held out in every training, so a champion and a challenger can be compared on records
neither has seen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryError, DiscoveryInputError, InsufficientDataError
from alphaloop.discovery.feedback import FeedbackRecord
from alphaloop.discovery.regime import REGIME_FEATURES
from alphaloop.ml.artifact import FeatureSchema, ModelArtifact

DEFAULT_NAME = "strategy-evaluator"
SCHEMA_NAME = "strategy_eval"
SCHEMA_VERSION = 1
HOLDOUT_FRACTION = 0.2
MIN_TRAIN, MIN_HOLDOUT = 20, 5
INPUT_NAME = "features"
TARGET_OPSET = 15
AGREEMENT_TOL = 1e-5

# Small and regularised: feedback comes in hundreds of records, not millions.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15, "subsample": 0.8, "subsample_freq": 1,
    "colsample_bytree": 0.9, "reg_lambda": 1.0, "n_jobs": 1, "verbose": -1,
}


def _position(record_id: str) -> float:
    """Where a record's id hashes to in [0, 1): a fixed function of the id."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") / 2.0**64


def is_holdout(record_id: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether a record is held out of training: a fixed function of its id (same answer every time)."""
    return _position(record_id) < fraction


def split_holdout(records: Sequence[FeedbackRecord], fraction: float = HOLDOUT_FRACTION
                  ) -> tuple[list[FeedbackRecord], list[FeedbackRecord]]:
    """(training, held-out) records by :func:`is_holdout`, each in the given order.

    A small set can hash to fewer than ``MIN_HOLDOUT`` held-out records by chance; then the records
    whose ids hash nearest above ``fraction`` are held out too (still a function of the ids, so the
    choice is the same every time for the same records), as long as ``MIN_TRAIN`` remain to train on."""
    train, held = [], []
    for r in records:
        (held if is_holdout(r.id, fraction) else train).append(r)
    short = MIN_HOLDOUT - len(held)
    if fraction > 0 and short > 0 and len(train) - short >= MIN_TRAIN:
        extra = {id(r) for r in sorted(train, key=lambda r: _position(r.id))[:short]}
        held = [r for r in records if id(r) in extra or is_holdout(r.id, fraction)]
        train = [r for r in train if id(r) not in extra]
    return train, held


# ---------------------------------------------------------------------- encoding


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(float(value)):
        return float(value)
    return None


@dataclass(frozen=True)
class SpecEncoder:
    """Turns (spec, regime) pairs into model rows; the columns are the model's feature schema.

    Parameters a family never had in training carry no information for the model and are not
    encoded; a string value never seen encodes as all zeros of its one-hot. A numeric parameter
    the model knows for the spec's family must be present (``DiscoveryInputError`` otherwise): pass
    full specs, defaults included.
    """

    columns: tuple[str, ...]

    @classmethod
    def from_records(cls, records: Sequence[FeedbackRecord]) -> SpecEncoder:
        families: set[str] = set()
        numeric: set[tuple[str, str]] = set()
        strings: set[tuple[str, str, str]] = set()
        for r in records:
            families.add(r.spec.name)
            for k, v in r.spec.params.items():
                if _numeric(v) is not None:
                    numeric.add((r.spec.name, k))
                elif isinstance(v, str):
                    strings.add((r.spec.name, k, v))
        cols = [f"family={f}" for f in sorted(families)]
        cols += [f"param:{f}|{p}" for f, p in sorted(numeric)]
        cols += [f"param:{f}|{p}={v}" for f, p, v in sorted(strings)]
        cols += [f"regime:{k}" for k in REGIME_FEATURES]
        return cls(tuple(cols))

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(c.split("=", 1)[1] for c in self.columns if c.startswith("family="))

    def covers(self, spec: StrategySpec) -> bool:
        """Whether the model was trained on this spec's family and every numeric parameter it needs is given."""
        return spec.name in self.families and not self._missing(spec)

    def _missing(self, spec: StrategySpec) -> list[str]:
        prefix = f"param:{spec.name}|"
        return [c[len(prefix):] for c in self.columns
                if c.startswith(prefix) and "=" not in c[len(prefix):] and _numeric(spec.params.get(c[len(prefix):]))
                is None]

    def encode(self, specs: Sequence[StrategySpec], regimes: Sequence[Mapping[str, float]]) -> np.ndarray:
        """float64 rows (float32-exact: what the ONNX graph receives) for ``specs[i]`` in ``regimes[i]``."""
        if len(specs) != len(regimes):
            raise DiscoveryInputError(f"{len(specs)} specs but {len(regimes)} regimes")
        index = {c: j for j, c in enumerate(self.columns)}
        families = set(self.families)
        X = np.zeros((len(specs), len(self.columns)), dtype=np.float64)
        for i, (spec, regime) in enumerate(zip(specs, regimes, strict=True)):
            if not isinstance(spec, StrategySpec):
                raise DiscoveryInputError(f"spec {i} must be a StrategySpec, got {type(spec).__name__}")
            if spec.name not in families:
                raise DiscoveryInputError(f"spec {i}: the evaluation model was not trained on strategy family "
                                          f"{spec.name!r} (it knows {', '.join(sorted(families))}); "
                                          "feed back backtests of that family and retrain")
            missing = self._missing(spec)
            if missing:
                raise DiscoveryInputError(f"spec {i} ({spec.name}): parameter(s) {', '.join(missing)} missing or not "
                                          "numeric; pass the full parameters, defaults included")
            X[i, index[f"family={spec.name}"]] = 1.0
            for k, v in spec.params.items():
                x = _numeric(v)
                col = f"param:{spec.name}|{k}" if x is not None else f"param:{spec.name}|{k}={v}"
                j = index.get(col)
                if j is not None:
                    X[i, j] = 1.0 if x is None else x
            for k in REGIME_FEATURES:
                v = regime.get(k) if isinstance(regime, Mapping) else None
                x = _numeric(v)
                if x is None or isinstance(v, bool):
                    raise DiscoveryInputError(f"regime for spec {i}: feature {k!r} must be a finite number, got {v!r}")
                X[i, index[f"regime:{k}"]] = x
        return np.asarray(X, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------------- metrics


def score_metrics(y_true: np.ndarray, y_pred: np.ndarray, baseline: float) -> dict[str, float]:
    """MAE, RMSE, Spearman rank correlation, Pearson IC and the MAE of always predicting ``baseline``."""
    from scipy.stats import pearsonr, spearmanr

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    varied = len(y_true) > 2 and np.ptp(y_pred) > 0 and np.ptp(y_true) > 0
    return {
        "n": float(len(y_true)),
        "mae": float(np.mean(np.abs(y_pred - y_true))),
        "rmse": float(np.sqrt(np.mean((y_pred - y_true) ** 2))),
        "spearman": float(spearmanr(y_true, y_pred).statistic) if varied else math.nan,
        "ic": float(pearsonr(y_true, y_pred).statistic) if varied else math.nan,
        "baseline_mae": float(np.mean(np.abs(baseline - y_true))),
    }


# ---------------------------------------------------------------------- the model


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # same bits on every machine and call
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


class StrategyEvaluationModel:
    """Predicts a strategy's out-of-sample backtest_score in [0,1] from its spec params (family one-hot +
    numeric params) and regime features.

    ``metrics`` are measured on held-out records (``mae``, ``rmse``, ``spearman``, ``ic``,
    ``baseline_mae``: the MAE of predicting the training mean) plus ``n_train`` and ``n_holdout``.
    ``version`` is the registry version (``"3"``) once registered or loaded, before that
    ``"sha256:<12 hex>"`` of the ONNX bytes.
    """

    def __init__(self, onnx_bytes: bytes, encoder: SpecEncoder, metrics: Mapping[str, float], *,
                 version: str | None = None, info: Mapping[str, Any] | None = None):
        self.onnx = bytes(onnx_bytes)
        self.encoder = encoder
        self.metrics = dict(metrics)
        self.sha256 = ModelArtifact.digest(self.onnx)
        self.version = version or f"sha256:{self.sha256[:12]}"
        self.info = dict(info or {})
        self._sess = _session(self.onnx)
        self._input = self._sess.get_inputs()[0].name

    # -------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, records: Sequence[FeedbackRecord], *, seed: int = 0,
            holdout: float = HOLDOUT_FRACTION) -> StrategyEvaluationModel:
        """Train on the records not held out (:func:`is_holdout` with ``holdout``), measure on the others.

        ``holdout=0`` trains on every record and measures nothing out of sample (``metrics`` then has
        only the counts). Raises ``InsufficientDataError`` when fewer than ``MIN_TRAIN`` records
        remain to train on or (holdout > 0) fewer than ``MIN_HOLDOUT`` are held out.
        """
        records = list(records)
        for k, r in enumerate(records):
            if not isinstance(r, FeedbackRecord):
                raise DiscoveryInputError(f"record {k} is a {type(r).__name__}, not a FeedbackRecord")
        if not 0.0 <= holdout < 1.0:
            raise DiscoveryInputError(f"holdout must be within [0, 1), got {holdout}")
        train, held = split_holdout(records, holdout) if holdout > 0 else (records, [])
        if len(train) < MIN_TRAIN or (holdout > 0 and len(held) < MIN_HOLDOUT):
            raise InsufficientDataError(
                f"{len(records)} feedback records give {len(train)} to train on and {len(held)} held out; "
                f"the evaluation model needs at least {MIN_TRAIN} and {MIN_HOLDOUT if holdout > 0 else 0}")
        encoder = SpecEncoder.from_records(train)
        X = encoder.encode([r.spec for r in train], [r.regime for r in train])
        y = np.array([r.backtest_score for r in train], dtype=np.float64)
        params = {**LIGHTGBM_PARAMS, "min_child_samples": max(3, min(20, len(train) // 20)), "random_state": seed}
        import lightgbm

        est = lightgbm.LGBMRegressor(**params)
        est.fit(X, y)
        onnx_bytes = _to_onnx(est, len(encoder.columns))
        _check_agreement(est, onnx_bytes, X)
        info = {"kind": "strategy_evaluation", "learner": "lightgbm", "params": params, "seed": seed,
                "holdout_fraction": holdout, "train_mean": float(y.mean()),
                "train_ids_sha256": _ids_digest(train)}
        metrics: dict[str, float] = {"n_train": float(len(train)), "n_holdout": float(len(held))}
        model = cls(onnx_bytes, encoder, metrics, info=info)
        if held:
            model.metrics.update(model.evaluate(held, baseline=float(y.mean())))
        return model

    # -------------------------------------------------------------- use

    @property
    def families(self) -> tuple[str, ...]:
        return self.encoder.families

    def covers(self, spec: StrategySpec) -> bool:
        return self.encoder.covers(spec)

    def predict(self, specs: Sequence[StrategySpec], regime: Mapping[str, float]) -> np.ndarray:
        """``ml_confidence`` in [0, 1] for each spec in one regime (1-D float64)."""
        specs = list(specs)
        if not specs:
            return np.empty(0, dtype=np.float64)
        return self._run(self.encoder.encode(specs, [regime] * len(specs)))

    def predict_records(self, records: Sequence[FeedbackRecord]) -> np.ndarray:
        """Predictions for each record's spec in its own regime."""
        records = list(records)
        if not records:
            return np.empty(0, dtype=np.float64)
        return self._run(self.encoder.encode([r.spec for r in records], [r.regime for r in records]))

    def evaluate(self, records: Sequence[FeedbackRecord], *, baseline: float | None = None) -> dict[str, float]:
        """Held-out metrics on ``records`` (see :func:`score_metrics`); ``baseline`` defaults to the
        training mean recorded at fit time."""
        records = list(records)
        if not records:
            raise InsufficientDataError("no records to evaluate the model on")
        if baseline is None:
            baseline = float(self.info.get("train_mean", math.nan))
        y = np.array([r.backtest_score for r in records], dtype=np.float64)
        return score_metrics(y, self.predict_records(records), baseline)

    def _run(self, X: np.ndarray) -> np.ndarray:
        out = self._sess.run(None, {self._input: np.ascontiguousarray(X, dtype=np.float32)})[0]
        return np.clip(np.asarray(out, dtype=np.float64).reshape(len(X)), 0.0, 1.0)

    # -------------------------------------------------------------- registry

    def to_artifact(self, name: str = DEFAULT_NAME) -> ModelArtifact:
        meta = {**self.info, "metrics": self.metrics, "input_name": INPUT_NAME, "opset": TARGET_OPSET}
        return ModelArtifact(name=name, version=0, task="regression", onnx=self.onnx,
                             schema=FeatureSchema(SCHEMA_NAME, SCHEMA_VERSION, self.encoder.columns), horizon=0,
                             sha256=self.sha256, metadata=meta)

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact) -> StrategyEvaluationModel:
        if artifact.schema.name != SCHEMA_NAME:
            raise DiscoveryInputError(f"model {artifact.name!r} v{artifact.version} takes feature set "
                                      f"{artifact.schema.name!r}, not {SCHEMA_NAME!r}: not a strategy-evaluation model")
        meta = dict(artifact.metadata or {})
        metrics = {k: float(v) for k, v in (meta.pop("metrics", None) or {}).items()
                   if isinstance(v, int | float) or v in ("nan", "inf", "-inf")}
        return cls(artifact.onnx, SpecEncoder(tuple(artifact.schema.columns)), metrics,
                   version=str(artifact.version), info=meta)

    def register(self, registry: Any, name: str = DEFAULT_NAME, *, alias: str | None = None) -> StrategyEvaluationModel:
        """Register as the next version of ``name`` (optionally pointing ``alias`` at it); return the
        registered model (same predictions, ``version`` set)."""
        return self.from_artifact(registry.register(self.to_artifact(name), alias=alias))

    @classmethod
    def load(cls, registry: Any, name: str = DEFAULT_NAME, *, version: int | None = None,
             alias: str | None = None) -> StrategyEvaluationModel:
        """A registered model (hash checked by the registry), by version, alias, or the latest."""
        return cls.from_artifact(registry.load(name, version=version, alias=alias))

    def __repr__(self) -> str:
        return (f"StrategyEvaluationModel(version={self.version!r}, families={list(self.families)}, "
                f"mae={self.metrics.get('mae')}, spearman={self.metrics.get('spearman')})")


def _ids_digest(records: Sequence[FeedbackRecord]) -> str:
    return hashlib.sha256("\n".join(sorted(r.id for r in records)).encode()).hexdigest()


def _to_onnx(est: Any, n_features: int) -> bytes:
    try:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = convert_lightgbm(est, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                                 target_opset=TARGET_OPSET)
    except Exception as e:  # converter failures come as RuntimeError, NotImplementedError, ...
        raise DiscoveryError(f"ONNX conversion of the evaluation model failed: {e}") from e
    proto.producer_name = "alphaloop"
    proto.graph.name = "strategy_evaluation"  # the converter names it with a random uuid: same fit, same bytes
    return proto.SerializeToString()


def _check_agreement(est: Any, onnx_bytes: bytes, X: np.ndarray) -> None:
    native = np.asarray(est.predict(X), dtype=np.float64)
    sess = _session(onnx_bytes)
    got = np.asarray(sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})[0], dtype=np.float64)
    got = got.reshape(len(X))
    diff = np.abs(got - native)
    if not np.all(diff <= AGREEMENT_TOL * np.maximum(1.0, np.abs(native))):
        i = int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff)))
        raise DiscoveryError(f"ONNX and native evaluation-model predictions disagree on row {i}: "
                             f"{got[i]!r} vs {native[i]!r}")


__all__ = ["DEFAULT_NAME", "HOLDOUT_FRACTION", "MIN_HOLDOUT", "MIN_TRAIN", "SCHEMA_NAME", "SpecEncoder",
           "StrategyEvaluationModel", "is_holdout", "score_metrics", "split_holdout"]
