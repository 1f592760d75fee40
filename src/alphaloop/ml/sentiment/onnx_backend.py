"""Any ONNX text classifier (FinBERT exported to ONNX, or a model of our own) as a sentiment backend.

The model takes token ids ``[batch, seq]`` (int64 or int32), optionally an attention mask and
token type ids of the same shape, and returns class scores ``[batch, n_labels]``: logits (the
default; softmax is applied) or probabilities (``outputs="probabilities"``). ``labels`` names the
classes in the model's order; ProsusAI's FinBERT, for one, is ``("positive", "negative",
"neutral")``.

A reading: ``label`` is the most likely class, ``confidence`` its probability, ``score`` is
P(positive) - P(negative). ``neutral_band`` (default 0.2) is used only where a label is derived
from a score, i.e. the engine's aggregated readings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alphaloop.core.predictions import Sentiment
from alphaloop.ml.errors import InferenceError, ModelLoadError
from alphaloop.ml.sentiment.base import (
    DEFAULT_MAX_CHARS,
    LABELS,
    NEGATIVE,
    POSITIVE,
    BaseBackend,
    check_max_chars,
)
from alphaloop.ml.sentiment.tokenizer import TextTokenizer, load_tokenizer

IDS_NAMES = ("input_ids", "ids", "input", "tokens", "token_ids")
MASK_NAMES = ("attention_mask", "input_mask", "mask")
TYPE_NAMES = ("token_type_ids", "segment_ids")
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxTextBackend(BaseBackend):
    """Score texts with an ONNX text-classification model and its tokenizer.

    ``model_path``: the ``.onnx`` file. ``tokenizer_path``: a tokenizer file or folder (see
    :func:`alphaloop.ml.sentiment.tokenizer.load_tokenizer`), or pass a ready ``tokenizer``.
    ``max_length``: tokens per text (a model with a fixed sequence length uses its own).
    ``name``: the readings' source and cache key; default ``onnx:<file stem>:<sha256 prefix>``, so
    a retrained model never answers from an older model's cache entries.

    Raises :class:`ModelLoadError` (naming the path) when a file is missing or not a loadable
    model, or when the model's inputs or outputs do not fit a text classifier with these labels.
    """

    def __init__(self, model_path: str | Path, tokenizer_path: str | Path | None = None, *,
                 labels: Sequence[str] = LABELS, tokenizer: TextTokenizer | None = None,
                 max_length: int = 128, batch_size: int = 32, outputs: str = "logits",
                 neutral_band: float = 0.2, name: str | None = None,
                 providers: Sequence[str] | None = None, max_chars: int = DEFAULT_MAX_CHARS,
                 lowercase: bool | None = None):
        self.model_path = Path(model_path)
        self.labels = _check_labels(labels)
        if outputs not in ("logits", "probabilities"):
            raise ValueError(f"outputs must be 'logits' or 'probabilities', got {outputs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not 0.0 <= neutral_band < 1.0:
            raise ValueError(f"neutral_band must be in [0, 1), got {neutral_band}")
        self.outputs, self.batch_size, self.neutral_band = outputs, batch_size, float(neutral_band)
        self.max_chars = check_max_chars(max_chars)

        if not self.model_path.is_file():
            raise ModelLoadError(f"{self.model_path}: model file not found")
        digest = _sha256(self.model_path)
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - part of the install
            raise ModelLoadError("the ONNX backend needs the 'onnxruntime' package") from e
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # onnxruntime's warnings are not ours to print
            self._session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                 providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelLoadError(f"{self.model_path}: cannot load the ONNX model: {e}") from e
        self._bind_inputs()
        self._bind_output()

        if tokenizer is None:
            if tokenizer_path is None:
                raise ValueError("give tokenizer_path or tokenizer")
            tokenizer = load_tokenizer(tokenizer_path, max_length=max_length, lowercase=lowercase)
        self.tokenizer = tokenizer
        self.name = name or f"onnx:{self.model_path.stem}:{digest[:12]}"

    # ------------------------------------------------------------------ model wiring

    def _bind_inputs(self) -> None:
        where = self.model_path
        self._ids = self._mask = self._types = None
        self._seq_len: int | None = None
        inputs = self._session.get_inputs()
        for inp in inputs:
            lname = inp.name.lower()
            if lname in MASK_NAMES:
                self._mask = inp
            elif lname in TYPE_NAMES:
                self._types = inp
            elif lname in IDS_NAMES or (self._ids is None and len(inputs) == 1):
                self._ids = inp
            else:
                raise ModelLoadError(f"{where}: model input {inp.name!r} is not one a text classifier takes "
                                     f"(token ids named one of {IDS_NAMES}, optional {MASK_NAMES[0]!r} "
                                     f"and {TYPE_NAMES[0]!r})")
        if self._ids is None:
            raise ModelLoadError(f"{where}: the model has no token-id input (expected one named one of {IDS_NAMES})")
        for inp in (self._ids, self._mask, self._types):
            if inp is None:
                continue
            if inp.type not in _INT_TYPES:
                raise ModelLoadError(f"{where}: model input {inp.name!r} is {inp.type}; expected int64 or "
                                     "int32 token ids / mask")
            if len(inp.shape) != 2:
                raise ModelLoadError(f"{where}: model input {inp.name!r} has shape {inp.shape}; expected "
                                     "[batch, sequence]")
            if isinstance(inp.shape[1], int):
                if self._seq_len is not None and self._seq_len != inp.shape[1]:
                    raise ModelLoadError(f"{where}: model inputs disagree on the sequence length")
                self._seq_len = inp.shape[1]

    def _bind_output(self) -> None:
        outputs = self._session.get_outputs()
        named = [o for o in outputs if o.name.lower() in ("logits", "probabilities", "probs", "scores")]
        out = named[0] if named else outputs[0]
        if len(out.shape) != 2:
            raise ModelLoadError(f"{self.model_path}: model output {out.name!r} has shape {out.shape}; "
                                 "expected [batch, classes]")
        if isinstance(out.shape[1], int) and out.shape[1] != len(self.labels):
            raise ModelLoadError(f"{self.model_path}: model output {out.name!r} has {out.shape[1]} classes but "
                                 f"{len(self.labels)} labels were given: {self.labels}")
        self._out = out

    # ------------------------------------------------------------------ scoring

    def _score_clean(self, texts: list[str]) -> list[Sentiment]:
        results: list[Sentiment] = []
        for i in range(0, len(texts), self.batch_size):
            results.extend(self._score_chunk(texts[i : i + self.batch_size]))
        return results

    def _score_chunk(self, texts: list[str]) -> list[Sentiment]:
        ids, mask = self.tokenizer.encode_batch(texts, pad_to=self._seq_len)
        feed = {self._ids.name: ids.astype(_INT_TYPES[self._ids.type], copy=False)}
        if self._mask is not None:
            feed[self._mask.name] = mask.astype(_INT_TYPES[self._mask.type], copy=False)
        if self._types is not None:
            feed[self._types.name] = np.zeros_like(ids, dtype=_INT_TYPES[self._types.type])
        try:
            (raw,) = self._session.run([self._out.name], feed)
        except Exception as e:  # onnxruntime's own exception types
            raise InferenceError(f"{self.model_path}: inference failed: {e}") from e
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim != 2 or raw.shape != (len(texts), len(self.labels)):
            raise InferenceError(f"{self.model_path}: model returned shape {raw.shape}; expected "
                                 f"({len(texts)}, {len(self.labels)}) for labels {self.labels}")
        if not np.all(np.isfinite(raw)):
            raise InferenceError(f"{self.model_path}: model returned non-finite scores")
        if self.outputs == "logits":
            z = np.exp(raw - raw.max(axis=1, keepdims=True))
            probs = z / z.sum(axis=1, keepdims=True)
        else:
            if np.any(raw < 0):
                raise InferenceError(f"{self.model_path}: outputs='probabilities' but the model returned negatives")
            probs = raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-12)
        pos = probs[:, self.labels.index(POSITIVE)] if POSITIVE in self.labels else np.zeros(len(texts))
        neg = probs[:, self.labels.index(NEGATIVE)] if NEGATIVE in self.labels else np.zeros(len(texts))
        best = probs.argmax(axis=1)
        return [Sentiment(float(np.clip(p - n, -1.0, 1.0)), float(pr[b]), self.labels[b], self.name)
                for p, n, pr, b in zip(pos, neg, probs, best)]


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of label names, not one string")
    out = tuple(str(lab).strip().lower() for lab in labels)
    unknown = [lab for lab in out if lab not in LABELS]
    if unknown:
        raise ValueError(f"labels must be drawn from {LABELS}; got {unknown}")
    if len(set(out)) != len(out) or len(out) < 2:
        raise ValueError(f"labels must be 2 or 3 distinct names, got {tuple(labels)}")
    if POSITIVE not in out and NEGATIVE not in out:
        raise ValueError("labels must include 'positive' or 'negative'")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read the model file: {e}") from e
    return h.hexdigest()
