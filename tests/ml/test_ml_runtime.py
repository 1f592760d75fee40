"""The inference runtime and the micro-batcher, against real ONNX models and onnxruntime's own output."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from runtime_helpers import (
    N_FEATURES,
    assert_float32_close,
    columns,
    counted_runtime,
    lgbm_regressor,
    logistic_model,
    make_artifact,
    ort_outputs,
    poison_model,
    random_rows,
    ridge_model,
    sigmoid_model,
    slow_model,
)

from alphaloop.core.predictions import InferencePath, Prediction
from alphaloop.ml.batching import MicroBatcher
from alphaloop.ml.errors import InferenceError, InferenceTimeoutError, ModelLoadError, SchemaMismatchError
from alphaloop.ml.runtime import DEFAULT_RETURN_SCALE, InferenceRuntime, PredictionBatch


def as_mapping(row: np.ndarray) -> dict[str, float]:
    return dict(zip(columns(len(row)), (float(v) for v in row)))


@pytest.fixture(scope="module")
def ridge_rt() -> InferenceRuntime:
    return InferenceRuntime(make_artifact(ridge_model()[0], name="ridge", version=3))


@pytest.fixture(scope="module")
def lgbm_rt() -> InferenceRuntime:
    # One intra-op thread keeps onnxruntime's tree sums in one order, so 1-row and N-row runs agree
    # bit for bit (see assert_float32_close for why that is not true in general).
    return InferenceRuntime(make_artifact(lgbm_regressor()[0], name="lgbm"), providers=("cpu",),
                            intra_op_threads=1)


# ---- provider chain ---------------------------------------------------------------------------------


def test_chain_falls_to_onnx_cpu_and_records_why(ridge_rt: InferenceRuntime) -> None:
    # This build has no TensorRT or CUDA: ONNX Runtime accepts the request and silently runs on CPU;
    # the runtime must notice that from session.get_providers() and say so.
    assert "CUDAExecutionProvider" not in ort.get_available_providers()
    assert ridge_rt.path is InferencePath.ONNX_CPU
    report = ridge_rt.provider_report()
    assert report.requested == ("tensorrt", "cuda", "cpu")
    status = {a.provider: a for a in report.attempts}
    assert [a.provider for a in report.attempts] == ["tensorrt", "cuda", "cpu"]
    assert status["tensorrt"].status == "skipped" and status["cuda"].status == "skipped"
    assert "CPUExecutionProvider" in status["tensorrt"].reason
    assert "TensorrtExecutionProvider is not in this onnxruntime build" in status["tensorrt"].reason
    assert "CUDAExecutionProvider is not in this onnxruntime build" in status["cuda"].reason
    assert status["cpu"].status == "active"
    assert report.session_providers == ("CPUExecutionProvider",)
    assert report.to_dict()["path"] == "onnx_cpu"
    assert "skipped" in str(report)
    assert ridge_rt.predict(random_rows(1)[0]).path is InferencePath.ONNX_CPU


def test_gpu_only_chain_ends_at_default_predictor_and_strict_refuses() -> None:
    art = make_artifact(ridge_model()[0])
    rt = InferenceRuntime(art, providers=("tensorrt", "cuda"))
    assert rt.path is InferencePath.DEFAULT
    assert [a.status for a in rt.provider_report().attempts] == ["skipped", "skipped"]
    p = rt.predict(random_rows(1)[0])
    assert (p.value, p.confidence, p.path) == (0.0, 0.0, InferencePath.DEFAULT)
    with pytest.raises(ModelLoadError, match="no ONNX path works"):
        InferenceRuntime(art, providers=("cuda",), strict=True)


def test_unknown_provider_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown provider 'rocm'"):
        InferenceRuntime(make_artifact(ridge_model()[0]), providers=("rocm", "cpu"))


def test_corrupt_model_answers_with_the_default_predictor_on_record() -> None:
    rt = InferenceRuntime(make_artifact(b"\x08\x07not an onnx model", "classification"))
    assert rt.path is InferencePath.DEFAULT
    assert all(a.status == "failed" and "InvalidProtobuf" in a.reason for a in rt.provider_report().attempts)
    p = rt.predict(random_rows(1)[0])
    assert (p.value, p.confidence, p.path) == (0.5, 0.0, InferencePath.DEFAULT)  # P(up) = 0.5
    batch = rt.predict_batch(random_rows(4))
    assert batch.path is InferencePath.DEFAULT and np.all(batch.values == 0.5)
    with pytest.raises(ModelLoadError):
        InferenceRuntime(make_artifact(b"garbage"), providers=("cpu",), strict=True)


def test_bytes_that_do_not_match_their_sha256_are_never_loaded() -> None:
    rt = InferenceRuntime(make_artifact(ridge_model()[0], sha256="0" * 64), providers=("cpu",))
    assert rt.path is InferencePath.DEFAULT
    assert "sha256" in rt.provider_report().attempts[0].reason


def test_model_whose_input_disagrees_with_its_schema_is_not_served() -> None:
    rt = InferenceRuntime(make_artifact(ridge_model(5)[0], n_features=N_FEATURES), providers=("cpu",))
    assert rt.path is InferencePath.DEFAULT
    assert "has 8 columns" in rt.provider_report().attempts[0].reason


class _GpuSessionFailingAtFirstRun:
    """Stand-in, the one place the tests use one: a session that claims CUDA and fails on its first run
    (what a GPU host with a broken cuDNN does). No real provider can be made to fail on demand here."""

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def __init__(self, real: Any):
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def run(self, *args: Any) -> Any:
        raise RuntimeError("CUDA failure 35: CUDA driver version is insufficient")


def test_provider_that_fails_at_warm_up_is_skipped_for_the_next() -> None:
    def factory(model: bytes, opts: Any, providers: list[str], popts: list[dict]) -> Any:
        real = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return _GpuSessionFailingAtFirstRun(real) if providers[0] == "CUDAExecutionProvider" else real

    rt = InferenceRuntime(make_artifact(ridge_model()[0]), providers=("cuda", "cpu"), session_factory=factory)
    attempts = rt.provider_report().attempts
    assert attempts[0].status == "failed" and "warm-up inference failed" in attempts[0].reason
    assert "driver version is insufficient" in attempts[0].reason
    assert attempts[1].status == "active" and rt.path is InferencePath.ONNX_CPU


# ---- answers equal onnxruntime's own -------------------------------------------------------------------


def test_regression_equals_onnxruntime_and_sklearn(ridge_rt: InferenceRuntime) -> None:
    onnx_bytes, model = ridge_model()
    x = random_rows(50, seed=7)
    batch = ridge_rt.predict_batch(x)
    np.testing.assert_array_equal(batch.values, ort_outputs(onnx_bytes, x)[0].ravel().astype(np.float64))
    np.testing.assert_allclose(batch.values, model.predict(x), rtol=1e-4, atol=1e-7)
    p = batch[0]
    assert isinstance(p, Prediction)
    assert (p.model, p.version, p.path, p.cached) == ("ridge", 3, InferencePath.ONNX_CPU, False)
    assert p.latency_ms > 0


def test_lightgbm_equals_onnxruntime_and_lightgbm(lgbm_rt: InferenceRuntime) -> None:
    onnx_bytes, model = lgbm_regressor()
    x = random_rows(200, seed=8)
    values = lgbm_rt.predict_batch(x).values
    reference = ort_outputs(onnx_bytes, x, intra_op_threads=1)[0].ravel()  # same settings as lgbm_rt
    np.testing.assert_array_equal(values, reference.astype(np.float64))
    np.testing.assert_allclose(values, model.predict(x), atol=1e-6)


@pytest.mark.parametrize("zipmap", [False, True], ids=["probabilities-tensor", "zipmap"])
def test_classifier_reads_p_up_from_label_and_probabilities_outputs(zipmap: bool) -> None:
    onnx_bytes, model = logistic_model(zipmap)
    rt = InferenceRuntime(make_artifact(onnx_bytes, "classification"), providers=("cpu",))
    assert "prob" in rt.provider_report().output
    x = random_rows(30, seed=9)
    batch = rt.predict_batch(x)
    raw = ort_outputs(onnx_bytes, x)[1]
    expected = np.array([d[1] for d in raw]) if zipmap else raw[:, 1].astype(np.float64)
    np.testing.assert_array_equal(batch.values, expected)
    np.testing.assert_allclose(batch.values, model.predict_proba(x)[:, 1], atol=1e-6)
    np.testing.assert_allclose(batch.confidences, np.abs(2 * batch.values - 1))


def test_classifier_with_a_plain_probability_tensor() -> None:
    w = np.linspace(-1, 1, N_FEATURES)
    rt = InferenceRuntime(make_artifact(sigmoid_model(w, 0.25), "classification"), providers=("cpu",))
    x = random_rows(20, seed=10)
    p = 1 / (1 + np.exp(-(x.astype(np.float64) @ w + 0.25)))
    batch = rt.predict_batch(x)
    np.testing.assert_allclose(batch.values, p, rtol=1e-5)
    assert all(0.0 <= c <= 1.0 for c in batch.confidences)
    one = rt.predict(x[3])
    assert one.value == batch.values[3] and math.isclose(one.confidence, abs(2 * one.value - 1))


def test_classes_in_metadata_choose_the_up_column() -> None:
    onnx_bytes, _ = logistic_model(False)
    art = make_artifact(onnx_bytes, "classification", metadata={"classes": ["up", "down"]})
    rt = InferenceRuntime(art, providers=("cpu",))
    x = random_rows(5, seed=11)
    np.testing.assert_array_equal(rt.predict_batch(x).values, ort_outputs(onnx_bytes, x)[1][:, 0])


def test_regression_confidence_uses_validation_error_then_a_default_scale() -> None:
    onnx_bytes, _ = ridge_model()
    x = random_rows(10, seed=12)
    # Where the exporter and the registry put the walk-forward (out-of-sample) metrics.
    meta = {"metrics": {"overall": {"rmse": 0.004, "mae": 0.003}, "folds": []}}
    with_rmse = InferenceRuntime(make_artifact(onnx_bytes, metadata=meta), providers=("cpu",)).predict_batch(x)
    np.testing.assert_allclose(with_rmse.confidences, np.tanh(np.abs(with_rmse.values) / 0.004))
    flat = InferenceRuntime(make_artifact(onnx_bytes, metadata={"val_mae": 0.02}), providers=("cpu",))
    assert flat.predict(x[0]).confidence == pytest.approx(math.tanh(abs(flat.predict(x[0]).value) / 0.02))
    plain = InferenceRuntime(make_artifact(onnx_bytes), providers=("cpu",)).predict_batch(x)
    np.testing.assert_allclose(plain.confidences, np.tanh(np.abs(plain.values) / DEFAULT_RETURN_SCALE))
    given = InferenceRuntime(make_artifact(onnx_bytes), providers=("cpu",), confidence_scale=1.0)
    assert math.isclose(given.predict(x[0]).confidence, math.tanh(abs(given.predict(x[0]).value)))


def test_predict_equals_predict_batch_row_for_row(lgbm_rt: InferenceRuntime) -> None:
    x = random_rows(40, seed=13)
    batch = lgbm_rt.predict_batch(pd.DataFrame(x, columns=columns()))
    for i, row in enumerate(x):
        for single in (lgbm_rt.predict(row), lgbm_rt.predict(as_mapping(row)),
                       lgbm_rt.predict(pd.Series(row, index=columns()))):
            assert single.value == batch[i].value
            assert single.confidence == batch[i].confidence
    listed = lgbm_rt.predict_batch([as_mapping(r) for r in x[:5]])
    np.testing.assert_array_equal(listed.values, batch.values[:5])


def test_predict_equals_onnxruntimes_one_row_run(ridge_rt: InferenceRuntime) -> None:
    # A linear model's kernel takes another path for one row than for many: predict() must equal
    # onnxruntime's own one-row answer exactly, and the batch answer up to float32 rounding.
    onnx_bytes, _ = ridge_model()
    x = random_rows(20, seed=21)
    batch = ridge_rt.predict_batch(x)
    for i, row in enumerate(x):
        single = ridge_rt.predict(row).value
        assert single == float(ort_outputs(onnx_bytes, x[i:i + 1])[0][0, 0])
        assert_float32_close(single, batch.values[i])


def test_prediction_batch_is_a_sequence(ridge_rt: InferenceRuntime) -> None:
    batch = ridge_rt.predict_batch(random_rows(5, seed=14))
    assert isinstance(batch, PredictionBatch) and len(batch) == 5
    assert batch[-1] == batch[4] and [p.value for p in batch[1:3]] == list(batch.values[1:3])
    assert [p.value for p in batch] == batch.values.tolist()
    with pytest.raises(IndexError):
        batch[5]
    empty = ridge_rt.predict_batch(np.empty((0, N_FEATURES), dtype=np.float32))
    assert len(empty) == 0 and list(empty) == []


# ---- refusing bad input ---------------------------------------------------------------------------------


def test_schema_mismatch_is_refused_with_the_difference_named(ridge_rt: InferenceRuntime) -> None:
    row = as_mapping(random_rows(1)[0])
    names = list(row)
    swapped = {names[1]: row[names[1]], names[0]: row[names[0]], **{k: row[k] for k in names[2:]}}
    with pytest.raises(SchemaMismatchError, match="wrong order: position 0 is 'f01', expected 'f00'"):
        ridge_rt.predict(swapped)
    with pytest.raises(SchemaMismatchError, match=r"missing \['f07'\]"):
        ridge_rt.predict({k: row[k] for k in names[:-1]})
    with pytest.raises(SchemaMismatchError, match=r"unexpected \['rsi'\]"):
        ridge_rt.predict({**row, "rsi": 1.0})
    with pytest.raises(SchemaMismatchError, match="expects one row with 8 features"):
        ridge_rt.predict(np.zeros(7, dtype=np.float32))
    with pytest.raises(SchemaMismatchError, match=r"shape \(3, 9\)"):
        ridge_rt.predict_batch(np.zeros((3, 9), dtype=np.float32))
    df = pd.DataFrame(random_rows(3), columns=columns())
    with pytest.raises(SchemaMismatchError, match="wrong order"):
        ridge_rt.predict_batch(df[list(reversed(columns()))])
    with pytest.raises(SchemaMismatchError, match="feature set 'test-features' v1"):
        ridge_rt.predict_batch(df.drop(columns=["f03"]))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_nan_and_inf_features_are_refused(ridge_rt: InferenceRuntime) -> None:
    x = random_rows(4)
    x[2, 5] = np.nan
    with pytest.raises(InferenceError, match="feature 'f05' of row 2 is nan"):
        ridge_rt.predict_batch(x)
    row = as_mapping(random_rows(1)[0])
    with pytest.raises(InferenceError, match=r"'f01'.* is inf"):
        ridge_rt.predict({**row, "f01": math.inf})
    with pytest.raises(InferenceError, match="is inf"):  # finite in float64, not in the model's float32
        ridge_rt.predict({**row, "f00": 1e39})
    with pytest.raises(InferenceError, match="not numeric"):
        ridge_rt.predict({**row, "f00": "high"})


# ---- failures while serving ---------------------------------------------------------------------------


def poison_rows(n: int, poison_at: int | None) -> np.ndarray:
    x = random_rows(n, seed=15)
    x[:, 0] = 0.5
    if poison_at is not None:
        x[poison_at, 0] = 10.0  # the real model's Gather fails on this row
    return x


def test_inference_failure_answers_default_on_record_or_raises() -> None:
    art = make_artifact(poison_model())
    rt = InferenceRuntime(art, providers=("cpu",))
    good = rt.predict_batch(poison_rows(4, None))
    assert good.path is InferencePath.ONNX_CPU
    np.testing.assert_allclose(good.values, poison_rows(4, None).sum(axis=1), rtol=1e-5)
    failed = rt.predict_batch(poison_rows(4, 1))
    assert failed.path is InferencePath.DEFAULT and np.all(failed.values == 0.0)
    assert np.all(failed.confidences == 0.0)
    report = rt.provider_report()
    assert report.inference_failures == 1 and "indices element out of data bounds" in report.last_failure
    assert rt.path is InferencePath.ONNX_CPU  # one failed run does not change the serving path

    strict = InferenceRuntime(art, providers=("cpu",), fallback_on_error=False)
    with pytest.raises(InferenceError, match="out of data bounds"):
        strict.predict(poison_rows(1, 0)[0])


def test_timeout_raises_and_closed_runtime_refuses() -> None:
    rt = InferenceRuntime(make_artifact(slow_model()), providers=("cpu",), warmup=False)
    with pytest.raises(InferenceTimeoutError, match=r"within 10\.0 ms"):
        rt.predict(random_rows(1)[0], timeout=0.01)
    with pytest.raises(InferenceTimeoutError):
        rt.predict_batch(random_rows(4), timeout=0.01)
    rt.close()
    with pytest.raises(InferenceError, match="closed"):
        rt.predict(random_rows(1)[0])


def test_fast_call_with_a_timeout_answers_normally(ridge_rt: InferenceRuntime) -> None:
    row = random_rows(1, seed=16)[0]
    assert ridge_rt.predict(row, timeout=5.0).value == ridge_rt.predict(row).value


def test_one_runtime_serves_many_threads() -> None:
    # One intra-op thread: with more, onnxruntime's own tree-ensemble sums for a single row change
    # order with thread-pool contention (1-ulp float32 differences, raw sessions too); with one, any
    # difference at all would be the runtime's fault.
    lgbm_rt = InferenceRuntime(make_artifact(lgbm_regressor()[0]), providers=("cpu",), intra_op_threads=1)
    x = random_rows(400, seed=17)
    expected = lgbm_rt.predict_batch(x).values

    def work(start: int) -> list[tuple[int, float]]:
        idx = range(start, len(x), 16)
        return [(i, lgbm_rt.predict(x[i] if i % 2 else as_mapping(x[i])).value) for i in idx]

    with ThreadPoolExecutor(16) as pool:
        results = [r for chunk in pool.map(work, range(16)) for r in chunk]
    assert len(results) == len(x)
    for i, value in results:
        assert value == expected[i]


# ---- micro-batching ----------------------------------------------------------------------------------


def run_together(n: int, fn: Any) -> list[Any]:
    """Call fn(i) from n threads released at once; return each result or the exception it raised."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def call(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_micro_batcher_gives_each_caller_its_own_row_in_few_runs() -> None:
    rt, session = counted_runtime(make_artifact(lgbm_regressor()[0]), intra_op_threads=1)  # exact: see above
    x = random_rows(48, seed=18)
    expected = rt.predict_batch(x).values
    session.reset()
    with MicroBatcher(rt, max_batch_size=16, max_wait_us=50_000) as batcher:
        got = run_together(48, lambda i: batcher.predict(x[i]))
        stats = batcher.stats()
    assert all(isinstance(p, Prediction) for p in got)
    assert_float32_close([p.value for p in got], expected)
    assert all(p.path is InferencePath.ONNX_CPU and p.confidence == pytest.approx(math.tanh(abs(p.value) / 0.01))
               for p in got)
    assert sum(session.batch_sizes) == 48           # every row ran exactly once
    assert len(session.batch_sizes) < 48 and max(session.batch_sizes) > 1  # ... in real batches
    assert max(session.batch_sizes) <= 16
    assert stats.requests == 48 and stats.rows == 48 and stats.batches == len(session.batch_sizes)


def test_micro_batcher_error_reaches_every_caller_of_the_failed_batch() -> None:
    rt, session = counted_runtime(make_artifact(poison_model()), fallback_on_error=False)
    x = poison_rows(8, poison_at=5)
    with MicroBatcher(rt, max_batch_size=8, max_wait_us=2_000_000) as batcher:
        got = run_together(8, lambda i: batcher.predict(x[i]))
        assert session.batch_sizes == [8]  # one batch; one poisoned row failed it
        assert all(isinstance(e, InferenceError) and "out of data bounds" in str(e) for e in got)
        assert batcher.stats().failed_batches == 1
        good = poison_rows(8, None)  # the batcher survives a failed batch
        assert all(p.path is InferencePath.ONNX_CPU for p in run_together(8, lambda i: batcher.predict(good[i])))


def test_micro_batcher_with_fallback_answers_default_to_the_whole_batch() -> None:
    rt, _ = counted_runtime(make_artifact(poison_model()))
    x = poison_rows(4, poison_at=0)
    with MicroBatcher(rt, max_batch_size=4, max_wait_us=2_000_000) as batcher:
        got = run_together(4, lambda i: batcher.predict(x[i]))
    assert all(p.path is InferencePath.DEFAULT and p.value == 0.0 and p.confidence == 0.0 for p in got)


def test_micro_batcher_rejects_bad_rows_in_the_callers_thread(ridge_rt: InferenceRuntime) -> None:
    with MicroBatcher(ridge_rt) as batcher:
        with pytest.raises(SchemaMismatchError):
            batcher.predict({"nope": 1.0})
        x = random_rows(1)[0]
        x[0] = np.nan
        with pytest.raises(InferenceError, match="finite"):
            batcher.predict(x)
        assert batcher.stats().requests == 0


@pytest.mark.parametrize("drain", [True, False])
def test_micro_batcher_close_drains_or_rejects_pending(drain: bool) -> None:
    rt, session = counted_runtime(make_artifact(ridge_model()[0]))
    batcher = MicroBatcher(rt, max_batch_size=100, max_wait_us=30_000_000)  # waits for a full batch
    x = random_rows(3, seed=19)
    results: list[Any] = [None] * 3

    def call(i: int) -> None:
        try:
            results[i] = batcher.predict(x[i])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    while batcher.stats().pending < 3:
        threading.Event().wait(0.001)
    batcher.close(drain=drain, timeout=5)
    for t in threads:
        t.join(5)
    if drain:
        assert session.batch_sizes == [3]
        assert_float32_close([p.value for p in results], rt.predict_batch(x).values)
    else:
        assert session.batch_sizes == []
        assert all(isinstance(e, InferenceError) and "closed before" in str(e) for e in results)
    with pytest.raises(InferenceError, match="closed"):
        batcher.predict(x[0])


def test_micro_batcher_timeout_and_direct_batches() -> None:
    rt = InferenceRuntime(make_artifact(slow_model()), providers=("cpu",), warmup=False)
    with MicroBatcher(rt, max_batch_size=4, max_wait_us=100) as batcher, \
            pytest.raises(InferenceTimeoutError, match="micro-batched"):
        batcher.predict(random_rows(1)[0], timeout=0.01)
    fast, session = counted_runtime(make_artifact(ridge_model()[0]))
    with MicroBatcher(fast) as batcher:
        x = random_rows(10, seed=20)
        assert batcher.predict_batch(x).values.tolist() == fast.predict_batch(x).values.tolist()
        assert session.batch_sizes == [10, 10] and batcher.stats().requests == 0
