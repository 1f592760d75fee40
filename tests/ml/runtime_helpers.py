"""Real ONNX models for the runtime and cache tests, built here from small sklearn/LightGBM fits or by
hand with onnx.helper (no downloads), plus a session wrapper that counts ``run`` calls."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from alphaloop.ml.artifact import FeatureSchema, ModelArtifact
from alphaloop.ml.runtime import InferenceRuntime

N_FEATURES = 8


def columns(n: int = N_FEATURES) -> tuple[str, ...]:
    return tuple(f"f{i:02d}" for i in range(n))


def make_artifact(onnx_bytes: bytes, task: str = "regression", n_features: int = N_FEATURES, *,
                  name: str = "m", version: int = 1, metadata: dict[str, Any] | None = None,
                  sha256: str | None = None) -> ModelArtifact:
    return ModelArtifact(name=name, version=version, task=task, onnx=onnx_bytes,
                         schema=FeatureSchema("test-features", 1, columns(n_features)), horizon=1,
                         sha256=sha256 or ModelArtifact.digest(onnx_bytes), metadata=metadata or {})


def random_rows(n: int, n_features: int = N_FEATURES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, n_features)).astype(np.float32)


def training_data(n_features: int = N_FEATURES, n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    x = random_rows(n, n_features, seed)
    y = 0.01 * x[:, 0] - 0.005 * x[:, 1] + 0.002 * np.sin(x[:, 2]) \
        + np.random.default_rng(seed).normal(0, 0.002, n)
    return x, y


@cache
def ridge_model(n_features: int = N_FEATURES) -> tuple[bytes, Any]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    x, y = training_data(n_features)
    model = Ridge(alpha=0.1).fit(x, y)
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, n_features]))])
    return onx.SerializeToString(), model


@cache
def logistic_model(zipmap: bool = False, n_features: int = N_FEATURES) -> tuple[bytes, Any]:
    """Outputs ("label", "probabilities"): [N, 2] tensor, or a ZipMap list of dicts when ``zipmap``."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x, y = training_data(n_features)
    model = LogisticRegression().fit(x, (y > 0).astype(int))
    options = None if zipmap else {id(model): {"zipmap": False}}
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, n_features]))], options=options)
    return onx.SerializeToString(), model


@cache
def lgbm_regressor(n_features: int = N_FEATURES, trees: int = 20) -> tuple[bytes, Any]:
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = training_data(n_features, n=600)
    model = lgb.LGBMRegressor(n_estimators=trees, num_leaves=15, min_child_samples=5, verbose=-1).fit(x, y)
    onx = onnxmltools.convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, n_features]))],
                                       target_opset=15)
    return onx.SerializeToString(), model


def _model(graph: onnx.GraphProto) -> bytes:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _input(n_features: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])


def sigmoid_model(weights: np.ndarray, bias: float) -> bytes:
    """A classifier whose only output is a plain [N, 1] tensor P(up) = sigmoid(x @ w + b)."""
    n = len(weights)
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z0"]),
             helper.make_node("Add", ["z0", "b"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p_up"])]
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [n, 1], weights.astype(np.float32).tolist()),
             helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])]
    out = helper.make_tensor_value_info("p_up", TensorProto.FLOAT, [None, 1])
    return _model(helper.make_graph(nodes, "sigmoid", [_input(n)], [out], inits))


def poison_model(n_features: int = N_FEATURES) -> bytes:
    """y = sum of the features, but the graph Gathers from a 3-element table at index int(f00): any
    row with f00 >= 3 makes ONNX Runtime itself fail the whole run ("indices element out of data
    bounds"). A real model failing on demand, for the fallback and error-propagation tests."""
    nodes = [
        helper.make_node("Slice", ["input", "zero", "one", "one"], ["col0"]),   # [N, 1]: column 0
        helper.make_node("Cast", ["col0"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "idx"], ["g"]),                      # fails out of range
        helper.make_node("Mul", ["g", "fzero"], ["g0"]),
        helper.make_node("ReduceSum", ["input", "one"], ["s"], keepdims=1),       # [N, 1]
        helper.make_node("Add", ["s", "g0"], ["y"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
             helper.make_tensor("one", TensorProto.INT64, [1], [1]),
             helper.make_tensor("table", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),
             helper.make_tensor("fzero", TensorProto.FLOAT, [1], [0.0])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    return _model(helper.make_graph(nodes, "poison", [_input(n_features)], [out], inits))


def slow_model(n_features: int = N_FEATURES, size: int = 1024, steps: int = 64) -> bytes:
    """y = sum of the features (+0), after a chain of ``steps`` [size x size] matrix products that
    depend on the input (so nothing is constant-folded): a real model that takes a while (~140 GFLOP,
    seconds on a laptop; a timed-out run is stopped between two products, so tests stay fast)."""
    nodes = [helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
             helper.make_node("Mul", ["total", "fzero"], ["t0"]),
             helper.make_node("Add", ["t0", "c"], ["cval"]),
             helper.make_node("Expand", ["cval", "shape"], ["m0"])]
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"]))
    nodes += [helper.make_node("ReduceMean", [f"m{steps}"], ["r"], keepdims=0),
              helper.make_node("Mul", ["r", "fzero"], ["r0"]),
              helper.make_node("ReduceSum", ["input", "one"], ["s"], keepdims=1),
              helper.make_node("Add", ["s", "r0"], ["y"])]
    inits = [helper.make_tensor("fzero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("c", TensorProto.FLOAT, [], [1.0 / size]),
             helper.make_tensor("shape", TensorProto.INT64, [2], [size, size]),
             helper.make_tensor("one", TensorProto.INT64, [1], [1])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    return _model(helper.make_graph(nodes, "slow", [_input(n_features)], [out], inits))


def ort_outputs(onnx_bytes: bytes, x: np.ndarray, intra_op_threads: int | None = None) -> list[Any]:
    """onnxruntime's own answer, from a session of its own: the reference the runtime must equal."""
    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def assert_float32_close(actual: Any, expected: Any) -> None:
    """Equal up to float32 rounding. onnxruntime's kernels may sum in another order for another batch
    size (GEMV for one row, GEMM for many; tree sums split across threads), so the same row can differ
    in its last float32 bit between a 1-row and an N-row run, in raw onnxruntime as well. Rows of the
    test data differ by ~1e-3, so this still catches any row answered with another row's value."""
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=1e-6, atol=1e-9)


class CountingSession:
    """A real session that records the batch size of every ``run`` (to count calls, not to fake)."""

    def __init__(self, session: Any):
        self._session = session
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []

    def run(self, output_names: Any, feed: dict[str, np.ndarray], run_options: Any = None) -> Any:
        with self._lock:
            self.batch_sizes.append(int(next(iter(feed.values())).shape[0]))
        return self._session.run(output_names, feed, run_options)

    def reset(self) -> None:
        with self._lock:
            self.batch_sizes.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def counting_factory(model: bytes, options: Any, providers: list[str], provider_options: list[dict]) -> Any:
    return CountingSession(ort.InferenceSession(model, options, providers=providers,
                                                provider_options=provider_options))


def counted_runtime(artifact: ModelArtifact, **kw: Any) -> tuple[InferenceRuntime, CountingSession]:
    """A CPU runtime whose session counts runs; the warm-up run is forgotten."""
    rt = InferenceRuntime(artifact, providers=("cpu",), session_factory=counting_factory, **kw)
    session = rt.session
    assert isinstance(session, CountingSession)
    session.reset()
    return rt, session
