"""Export a trained model to ONNX, prove the graph predicts what the native model does, and wrap it
in a :class:`ModelArtifact`.

Every exported graph has the same shape of interface, whatever the model:

* one input, ``"features"``: float32 ``[None, n_features]`` in the order of the artefact's schema;
* one output, float32 ``[None, 1]``: ``"forward_return"`` (regression) or ``"p_up"``, the probability
  of an up move (classification; the converters' label output and zipmap are dropped).

Agreement: the graph computes in float32, the native model in float64 (on the same float32 inputs,
see :mod:`.training`), so results differ by float32 rounding (~1e-7 relative). The check demands
``|onnx - native| <= 1e-5 * max(1, |native|)``: 1e-5 absolute for returns and probabilities (all
well below 1), relative for larger outputs, where an absolute bound would only measure float32's
resolution. A split sent the other way or a wrong output column breaks it by far more.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from alphaloop.ml.artifact import ModelArtifact
from alphaloop.ml.errors import TrainingError
from alphaloop.ml.training import TrainResult

INPUT_NAME = "features"
OUTPUT_NAMES = {"regression": "forward_return", "classification": "p_up"}
# onnxmltools' LightGBM converter supports opset <= 15; both converters use it for one runtime baseline.
TARGET_OPSET = 15
AGREEMENT_TOL = 1e-5


def to_onnx(result: TrainResult) -> bytes:
    """The ONNX bytes of ``result.model`` with the single-input, single-output interface above."""
    n = len(result.schema.columns)
    try:
        if result.model_kind == "lightgbm":
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat

            proto = convert_lightgbm(result.model, initial_types=[(INPUT_NAME, MLFloat([None, n]))],
                                     zipmap=False, target_opset=TARGET_OPSET)
        elif result.model_kind == "linear":
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType

            options = {"zipmap": False} if result.task == "classification" else None
            proto = convert_sklearn(result.model, initial_types=[(INPUT_NAME, FloatTensorType([None, n]))],
                                    options=options, target_opset=TARGET_OPSET)
        else:
            raise TrainingError(f"cannot export model kind {result.model_kind!r}")
        proto = _single_output(proto, result.task)
    except TrainingError:
        raise
    except Exception as e:  # converter failures come as RuntimeError, NotImplementedError, ...
        raise TrainingError(f"ONNX conversion of {result.model_kind} {result.task} failed: {e}") from e
    proto.producer_name = "alphaloop"
    _set_metadata(proto, {"feature_schema": json.dumps(result.schema.to_dict()), "task": result.task,
                          "horizon": str(result.horizon), "model": result.model_kind})
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_predict(onnx_bytes: bytes, X: Any) -> np.ndarray:
    """Run the graph with ONNX Runtime on the CPU; 1-D float64 of its single output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run(None, {name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return np.asarray(out, dtype=np.float64).reshape(len(X))


def check_agreement(result: TrainResult, onnx_bytes: bytes, X: Any = None,
                    tol: float = AGREEMENT_TOL) -> dict[str, Any]:
    """Compare ONNX Runtime and native predictions on ``X`` (default: ``result.check_rows``).

    Returns ``{"rows", "max_abs_diff", "tol"}``; raises ``TrainingError`` naming the worst row when
    they differ by more than ``tol * max(1, |native|)``.
    """
    rows = np.asarray(result.check_rows if X is None else X, dtype=np.float32)
    if rows.ndim != 2 or len(rows) == 0:
        raise TrainingError("no rows to check the ONNX export against the native model")
    native = result.predict(rows)
    got = onnx_predict(onnx_bytes, rows)
    diff = np.abs(got - native)
    allowed = tol * np.maximum(1.0, np.abs(native))
    if not np.all(diff <= allowed):  # also catches NaN from either side
        i = int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff / allowed)))
        raise TrainingError(f"ONNX and native {result.model_kind} predictions disagree on row {i}: "
                            f"onnx {got[i]!r}, native {native[i]!r} (|diff| {diff[i]:.3g} > {allowed[i]:.3g})")
    return {"rows": len(rows), "max_abs_diff": float(diff.max()), "tol": tol}


def export_model(result: TrainResult, name: str, *, check_rows: Any = None) -> ModelArtifact:
    """Convert, check agreement, and return an unregistered artefact (``version`` 0; the registry
    assigns the real one)."""
    data = to_onnx(result)
    check = check_agreement(result, data, check_rows)
    metadata = {
        "model": result.model_kind,
        "params": result.params,
        "metrics": {"overall": result.metrics, "folds": [_fold_dict(f) for f in result.folds]},
        "data_start": result.data_start.isoformat(),
        "data_end": result.data_end.isoformat(),
        "instrument": result.instrument,
        "n_samples": result.n_samples,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAMES[result.task],
        "opset": TARGET_OPSET,
        "onnx_check": check,
    }
    return ModelArtifact(name=name, version=0, task=result.task, onnx=data, schema=result.schema,
                         horizon=result.horizon, sha256=ModelArtifact.digest(data), metadata=metadata)


def _fold_dict(f: Any) -> dict[str, Any]:
    return {"index": f.index, "train_start": f.train_start.isoformat(), "train_end": f.train_end.isoformat(),
            "test_start": f.test_start.isoformat(), "test_end": f.test_end.isoformat(),
            "n_train": f.n_train, "n_test": f.n_test, "metrics": f.metrics}


def _single_output(proto: onnx.ModelProto, task: str) -> onnx.ModelProto:
    """Rewire the converter's outputs to the one output of the interface and prune what feeds nothing."""
    graph = proto.graph
    out_name = OUTPUT_NAMES[task]
    if task == "classification":
        # Converters emit (label, probabilities[N, 2]); column 1 is the class 1 = up.
        probs = next((o.name for o in graph.output if "prob" in o.name), None)
        if probs is None:
            raise TrainingError(f"classifier graph has no probabilities output: {[o.name for o in graph.output]}")
        graph.initializer.append(helper.make_tensor("p_up_column", TensorProto.INT64, [1], [1]))
        graph.node.append(helper.make_node("Gather", [probs, "p_up_column"], [out_name], axis=1))
    else:
        if len(graph.output) != 1:
            raise TrainingError(f"regressor graph has {len(graph.output)} outputs, expected 1")
        graph.node.append(helper.make_node("Identity", [graph.output[0].name], [out_name]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [None, 1]))
    return _prune(proto)


def _prune(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes (the classifiers' label branch) and initializers no output depends on."""
    graph = proto.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    return proto


def _set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    for k, v in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"alphaloop.{k}", v


__all__ = ["AGREEMENT_TOL", "INPUT_NAME", "OUTPUT_NAMES", "TARGET_OPSET", "check_agreement", "export_model",
           "onnx_predict", "to_onnx"]
