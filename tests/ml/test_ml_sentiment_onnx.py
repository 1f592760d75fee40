"""The ONNX backend end to end with a model made here: a scikit-learn logistic regression on
bag-of-words frequencies, written as an ONNX graph over token ids (Gather rows of the weight
matrix, masked mean, add the bias). Its probabilities must equal scikit-learn's predict_proba on
the same features: an independent reference. Also the tokenizer and every load/input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from alphaloop.ml.errors import InferenceError, ModelLoadError
from alphaloop.ml.sentiment import (
    OnnxTextBackend,
    SentimentEngine,
    WordPieceTokenizer,
    evaluate,
    load_labelled,
    load_tokenizer,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sentiment"
ORDER = ("negative", "neutral", "positive")  # sklearn sorts the classes alphabetically


# ----------------------------------------------------------------------------- model factory

def _graph(weights: np.ndarray, bias: np.ndarray, *, mask: bool, seq_len: int | None = None,
           id_type: int = TensorProto.INT64) -> onnx.ModelProto:
    """logits = mean over unmasked tokens of weights[ids] + bias (sum when there is no mask)."""
    n_cls = weights.shape[1]
    seq = seq_len if seq_len is not None else "seq"
    inputs = [helper.make_tensor_value_info("input_ids", id_type, ["batch", seq])]
    init = [numpy_helper.from_array(weights.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")]
    nodes = [helper.make_node("Gather", ["W", "input_ids"], ["emb"], axis=0)]  # [B, S, C]
    if mask:
        inputs.append(helper.make_tensor_value_info("attention_mask", id_type, ["batch", seq]))
        nodes += [
            helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["m", "axis_last"], ["m3"]),
            helper.make_node("Mul", ["emb", "m3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
            helper.make_node("ReduceSum", ["m", "axis1"], ["count"], keepdims=1),
            helper.make_node("Max", ["count", "one"], ["count1"]),
            helper.make_node("Div", ["total", "count1"], ["pooled"]),
        ]
    else:
        nodes.append(helper.make_node("ReduceSum", ["emb", "axis1"], ["pooled"], keepdims=0))
    nodes.append(helper.make_node("Add", ["pooled", "b"], ["logits"]))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_cls])
    graph = helper.make_graph(nodes, "bow_classifier", inputs, [out], init)
    model = _model(graph)
    onnx.checker.check_model(model)
    return model


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    # IR version 8 / opset 17: readable by any onnxruntime of the last few years
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _features(tok: WordPieceTokenizer, texts: list[str], vocab_size: int, *, normalise: bool) -> np.ndarray:
    """Bag-of-words over token ids (the padding id never appears), as frequencies or counts."""
    x = np.zeros((len(texts), vocab_size))
    for i, t in enumerate(texts):
        for j in tok.encode(t):
            x[i, j] += 1
        if normalise:
            x[i] /= max(x[i].sum(), 1)
    return x


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    return load_labelled(FIXTURES / "headlines.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """vocab.txt, the tokenizer, and a fitted model with and without an attention mask."""
    d = tmp_path_factory.mktemp("onnx_sentiment")
    words = sorted({w for t, _ in corpus for w in WordPieceTokenizer({"[PAD]": 0, "[UNK]": 1})._words(t)})
    vocab = ["[PAD]", "[UNK]", *words]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = load_tokenizer(d / "vocab.txt", max_length=64)
    texts, labels = [t for t, _ in corpus], [lab for _, lab in corpus]
    out = {"dir": d, "tok": tok, "texts": texts, "labels": labels, "V": len(vocab)}
    for name, normalise in (("mean", True), ("sum", False)):
        x = _features(tok, texts, len(vocab), normalise=normalise)
        clf = LogisticRegression(C=20.0, max_iter=2000).fit(x, labels)
        assert tuple(clf.classes_) == ORDER
        w = clf.coef_.T.copy()  # [V, 3]
        w[0] = 0.0  # the padding row: never counted (and not a feature)
        path = d / f"bow_{name}.onnx"
        onnx.save(_graph(w, clf.intercept_, mask=normalise), path)
        out[name] = (path, clf, w)
    return out


# ----------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("variant", ["mean", "sum"])
def test_probabilities_match_scikit_learn(trained, variant):
    path, clf, _ = trained[variant]
    backend = OnnxTextBackend(path, trained["dir"] / "vocab.txt", max_length=64, batch_size=7)
    texts = [*trained["texts"][:40], "Completely unseen words zyzzyva quokka", "Acme"]
    got = backend.score_batch(texts)
    x = _features(trained["tok"], texts, trained["V"], normalise=variant == "mean")
    proba = clf.predict_proba(x)
    for s, p in zip(got, proba):
        assert s.score == pytest.approx(p[2] - p[0], abs=1e-5)
        assert s.confidence == pytest.approx(p.max(), abs=1e-5)
        assert s.label == ORDER[int(p.argmax())]
        assert s.source == backend.name and backend.name.startswith(f"onnx:bow_{variant}:")


def test_engine_with_onnx_backend(trained):
    backend = OnnxTextBackend(trained["mean"][0], trained["dir"] / "vocab.txt", max_length=64)
    engine = SentimentEngine(backend)
    result = evaluate(engine, list(zip(trained["texts"], trained["labels"])))
    assert result.accuracy > 0.9  # its own training set: a check of the wiring, not of the model
    engine.score(trained["texts"][0])
    assert engine.cache_stats.hits >= 1
    engine.ingest("ACME", "2024-01-01", trained["texts"][0])
    assert engine.instrument_sentiment("ACME").source == f"{backend.name}:decayed"


def test_label_order_is_configurable(trained, tmp_path):
    path, clf, w = trained["mean"]
    perm = [2, 0, 1]  # FinBERT's order: positive, negative, neutral
    onnx.save(_graph(w[:, perm], clf.intercept_[perm], mask=True), tmp_path / "perm.onnx")
    a = OnnxTextBackend(path, trained["dir"] / "vocab.txt")
    b = OnnxTextBackend(tmp_path / "perm.onnx", trained["dir"] / "vocab.txt",
                        labels=("positive", "negative", "neutral"))
    for x, y in zip(a.score_batch(trained["texts"][:20]), b.score_batch(trained["texts"][:20])):
        assert x.label == y.label
        assert x.score == pytest.approx(y.score, abs=1e-6)
        assert x.confidence == pytest.approx(y.confidence, abs=1e-6)


def test_fixed_length_int32_model(trained, tmp_path):
    _, clf, w = trained["mean"]
    onnx.save(_graph(w, clf.intercept_, mask=True, seq_len=8, id_type=TensorProto.INT32), tmp_path / "fixed.onnx")
    backend = OnnxTextBackend(tmp_path / "fixed.onnx", trained["dir"] / "vocab.txt", max_length=64)
    text = trained["texts"][3]
    got = backend.score(text)
    ids = trained["tok"].encode(text)[:8]  # the model sees only its 8 positions
    x = np.zeros((1, trained["V"]))
    for j in ids:
        x[0, j] += 1
    p = clf.predict_proba(x / x.sum())[0]
    assert got.score == pytest.approx(p[2] - p[0], abs=1e-5)


def test_probability_outputs(trained, tmp_path):
    # a model whose output is already probabilities: softmax inside the graph
    path, clf, w = trained["mean"]
    m = _graph(w, clf.intercept_, mask=True)
    m.graph.node.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    m.graph.output[0].name = "probabilities"
    onnx.save(m, tmp_path / "probs.onnx")
    a = OnnxTextBackend(path, trained["dir"] / "vocab.txt").score_batch(trained["texts"][:10])
    b = OnnxTextBackend(tmp_path / "probs.onnx", trained["dir"] / "vocab.txt",
                        outputs="probabilities").score_batch(trained["texts"][:10])
    assert [x.label for x in a] == [y.label for y in b]
    assert [x.score for x in a] == pytest.approx([y.score for y in b], abs=1e-6)


# ----------------------------------------------------------------------------- errors

def test_missing_model_file(tmp_path, trained):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match=str(missing)):
        OnnxTextBackend(missing, trained["dir"] / "vocab.txt")


def test_corrupt_model_file(tmp_path, trained):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x00this is not an onnx model" * 10)
    with pytest.raises(ModelLoadError, match=str(bad)):
        OnnxTextBackend(bad, trained["dir"] / "vocab.txt")


def test_missing_and_corrupt_tokenizer(tmp_path, trained):
    with pytest.raises(ModelLoadError, match="tokenizer file not found"):
        OnnxTextBackend(trained["mean"][0], tmp_path / "vocab.txt")
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        OnnxTextBackend(trained["mean"][0], tmp_path / "tokenizer.json")
    (tmp_path / "v.txt").write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"no '\[UNK\]' token"):
        OnnxTextBackend(trained["mean"][0], tmp_path / "v.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no tokenizer in this folder"):
        OnnxTextBackend(trained["mean"][0], empty)


def test_model_with_inputs_a_text_classifier_does_not_take(tmp_path, trained):
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    g = helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["logits"])], "img", [x], [y])
    onnx.save(_model(g), tmp_path / "img.onnx")
    with pytest.raises(ModelLoadError, match=r"pixel_values.*float"):
        OnnxTextBackend(tmp_path / "img.onnx", trained["dir"] / "vocab.txt")
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    g2 = helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["logits"])], "two", [ids, x], [y])
    onnx.save(_model(g2), tmp_path / "two.onnx")
    with pytest.raises(ModelLoadError, match="'pixel_values' is not one a text classifier takes"):
        OnnxTextBackend(tmp_path / "two.onnx", trained["dir"] / "vocab.txt")


def test_labels_must_fit_the_output(trained, tmp_path):
    path = trained["mean"][0]
    with pytest.raises(ModelLoadError, match="3 classes but 2 labels"):
        OnnxTextBackend(path, trained["dir"] / "vocab.txt", labels=("negative", "positive"))
    with pytest.raises(ValueError, match="drawn from"):
        OnnxTextBackend(path, trained["dir"] / "vocab.txt", labels=("bearish", "neutral", "bullish"))
    with pytest.raises(ValueError, match="distinct"):
        OnnxTextBackend(path, trained["dir"] / "vocab.txt", labels=("negative", "negative", "positive"))
    # a class dimension known only at run time (here: one "class" per token) fails then, clearly
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq"])
    g = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)], "dyn", [ids], [y])
    onnx.save(_model(g), tmp_path / "dyn.onnx")
    two = OnnxTextBackend(tmp_path / "dyn.onnx", trained["dir"] / "vocab.txt", labels=("negative", "positive"))
    with pytest.raises(InferenceError, match=r"returned shape \(1, 3\); expected \(1, 2\)"):
        two.score("Acme beats estimates")


def test_bad_text_is_rejected_before_the_model_runs(trained):
    backend = OnnxTextBackend(trained["mean"][0], trained["dir"] / "vocab.txt")
    with pytest.raises(InferenceError, match="empty"):
        backend.score("  ")


# ----------------------------------------------------------------------------- tokenizer

def test_wordpiece_tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "earn", "##ings", "beat", "!", "cafe", "acme"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tok = load_tokenizer(tmp_path / "vocab.txt", max_length=6)
    assert tok.tokenize("Acme EARNINGS beat!") == ["acme", "earn", "##ings", "beat", "!"]
    assert tok.tokenize("Café zzz") == ["cafe", "[UNK]"]
    ids = tok.encode("Acme earnings beat!")
    assert ids == [2, 9, 4, 5, 6, 3]  # [CLS] ... [SEP], truncated to max_length 6
    batch, mask = tok.encode_batch(["acme", "acme beat"])
    assert batch.tolist() == [[2, 9, 3, 0], [2, 9, 6, 3]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    fixed, _ = tok.encode_batch(["acme"], pad_to=2)
    assert fixed.tolist() == [[2, 9]]


def test_vocab_json_and_folder(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"[PAD]": 0, "[UNK]": 1, "up": 2}), encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert tok.encode("UP down") == [2, 1]


def test_huggingface_wordpiece_json_without_the_tokenizers_package(tmp_path):
    try:
        import tokenizers  # noqa: F401

        pytest.skip("the tokenizers package is installed: it reads tokenizer.json itself")
    except ImportError:
        pass
    data = {"version": "1.0", "normalizer": {"type": "BertNormalizer", "lowercase": True},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100,
                      "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "rall": 4, "##ies": 5}}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    assert tok.encode("Rallies") == [2, 4, 5, 3]
    data["model"]["type"] = "BPE"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="needs the 'tokenizers' package"):
        load_tokenizer(tmp_path / "tokenizer.json")
