from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("model", "instrument", "features", "feature_names", "strategy")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    model: str
    instrument: str
    features: _containers.RepeatedScalarFieldContainer[float]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    def __init__(self, model: _Optional[str] = ..., instrument: _Optional[str] = ..., features: _Optional[_Iterable[float]] = ..., feature_names: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("value", "confidence", "model", "version", "path", "latency_ms", "cached", "task")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    value: float
    confidence: float
    model: str
    version: int
    path: str
    latency_ms: float
    cached: bool
    task: str
    def __init__(self, value: _Optional[float] = ..., confidence: _Optional[float] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., path: _Optional[str] = ..., latency_ms: _Optional[float] = ..., cached: _Optional[bool] = ..., task: _Optional[str] = ...) -> None: ...

class BatchPredictRequest(_message.Message):
    __slots__ = ("model", "instruments", "n_features", "features", "feature_names", "strategy")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENTS_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    model: str
    instruments: _containers.RepeatedScalarFieldContainer[str]
    n_features: int
    features: _containers.RepeatedScalarFieldContainer[float]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    def __init__(self, model: _Optional[str] = ..., instruments: _Optional[_Iterable[str]] = ..., n_features: _Optional[int] = ..., features: _Optional[_Iterable[float]] = ..., feature_names: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ...) -> None: ...

class BatchPredictResponse(_message.Message):
    __slots__ = ("values", "confidences", "model", "version", "paths", "cached", "latency_ms", "task")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    confidences: _containers.RepeatedScalarFieldContainer[float]
    model: str
    version: int
    paths: _containers.RepeatedScalarFieldContainer[str]
    cached: _containers.RepeatedScalarFieldContainer[bool]
    latency_ms: float
    task: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., confidences: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., paths: _Optional[_Iterable[str]] = ..., cached: _Optional[_Iterable[bool]] = ..., latency_ms: _Optional[float] = ..., task: _Optional[str] = ...) -> None: ...

class StrategySpec(_message.Message):
    __slots__ = ("name", "params_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    params_json: str
    def __init__(self, name: _Optional[str] = ..., params_json: _Optional[str] = ...) -> None: ...

class EvaluateStrategyRequest(_message.Message):
    __slots__ = ("specs", "regime")
    class RegimeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SPECS_FIELD_NUMBER: _ClassVar[int]
    REGIME_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[StrategySpec]
    regime: _containers.ScalarMap[str, float]
    def __init__(self, specs: _Optional[_Iterable[_Union[StrategySpec, _Mapping]]] = ..., regime: _Optional[_Mapping[str, float]] = ...) -> None: ...

class EvaluateStrategyResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, scores: _Optional[_Iterable[float]] = ...) -> None: ...

class SubmitBacktestFeedbackRequest(_message.Message):
    __slots__ = ("records_json",)
    RECORDS_JSON_FIELD_NUMBER: _ClassVar[int]
    records_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records_json: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitBacktestFeedbackResponse(_message.Message):
    __slots__ = ("accepted_ids",)
    ACCEPTED_IDS_FIELD_NUMBER: _ClassVar[int]
    accepted_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateStrategyRequest(_message.Message):
    __slots__ = ("family", "n", "keep", "seed", "regime")
    class RegimeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REGIME_FIELD_NUMBER: _ClassVar[int]
    family: str
    n: int
    keep: int
    seed: int
    regime: _containers.ScalarMap[str, float]
    def __init__(self, family: _Optional[str] = ..., n: _Optional[int] = ..., keep: _Optional[int] = ..., seed: _Optional[int] = ..., regime: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ScoredStrategy(_message.Message):
    __slots__ = ("spec", "score")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    spec: StrategySpec
    score: float
    def __init__(self, spec: _Optional[_Union[StrategySpec, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class GenerateStrategyResponse(_message.Message):
    __slots__ = ("candidates",)
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[ScoredStrategy]
    def __init__(self, candidates: _Optional[_Iterable[_Union[ScoredStrategy, _Mapping]]] = ...) -> None: ...

class RetrainEvaluatorRequest(_message.Message):
    __slots__ = ("force", "seed")
    FORCE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    force: bool
    seed: int
    def __init__(self, force: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class FeedbackJob(_message.Message):
    __slots__ = ("job_id", "status", "n_records", "promoted", "champion_version", "challenger_version", "reason", "metrics_json", "started_at", "finished_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    N_RECORDS_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    n_records: int
    promoted: bool
    champion_version: str
    challenger_version: str
    reason: str
    metrics_json: str
    started_at: str
    finished_at: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., n_records: _Optional[int] = ..., promoted: _Optional[bool] = ..., champion_version: _Optional[str] = ..., challenger_version: _Optional[str] = ..., reason: _Optional[str] = ..., metrics_json: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ...) -> None: ...

class FeedbackStatusRequest(_message.Message):
    __slots__ = ("job_id", "limit")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    limit: int
    def __init__(self, job_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class FeedbackStatusResponse(_message.Message):
    __slots__ = ("feedback_records", "new_records", "due", "due_reason", "model", "policy_json", "champion_json", "jobs")
    FEEDBACK_RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEW_RECORDS_FIELD_NUMBER: _ClassVar[int]
    DUE_FIELD_NUMBER: _ClassVar[int]
    DUE_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_JSON_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    feedback_records: int
    new_records: int
    due: bool
    due_reason: str
    model: str
    policy_json: str
    champion_json: str
    jobs: _containers.RepeatedCompositeFieldContainer[FeedbackJob]
    def __init__(self, feedback_records: _Optional[int] = ..., new_records: _Optional[int] = ..., due: _Optional[bool] = ..., due_reason: _Optional[str] = ..., model: _Optional[str] = ..., policy_json: _Optional[str] = ..., champion_json: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[FeedbackJob, _Mapping]]] = ...) -> None: ...

class TrainModelsRequest(_message.Message):
    __slots__ = ("data_path", "model", "task", "horizon", "folds", "name", "promote", "seed", "params_json")
    DATA_PATH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    data_path: str
    model: str
    task: str
    horizon: int
    folds: int
    name: str
    promote: bool
    seed: int
    params_json: str
    def __init__(self, data_path: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[str] = ..., horizon: _Optional[int] = ..., folds: _Optional[int] = ..., name: _Optional[str] = ..., promote: _Optional[bool] = ..., seed: _Optional[int] = ..., params_json: _Optional[str] = ...) -> None: ...

class TrainingStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class TrainingStatus(_message.Message):
    __slots__ = ("job_id", "status", "name", "version", "error", "metrics_json", "created_at", "finished_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    name: str
    version: int
    error: str
    metrics_json: str
    created_at: float
    finished_at: float
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., error: _Optional[str] = ..., metrics_json: _Optional[str] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ...) -> None: ...

class ModelMetricsRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ModelMetricsResponse(_message.Message):
    __slots__ = ("name", "version", "task", "horizon", "metrics_json", "aliases")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    task: str
    horizon: int
    metrics_json: str
    aliases: _containers.ScalarMap[str, int]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., task: _Optional[str] = ..., horizon: _Optional[int] = ..., metrics_json: _Optional[str] = ..., aliases: _Optional[_Mapping[str, int]] = ...) -> None: ...
