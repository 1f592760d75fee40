"""Tokenizers for :class:`OnnxTextBackend`, with nothing downloaded.

:func:`load_tokenizer` accepts

* a Hugging Face ``tokenizer.json``: loaded with the ``tokenizers`` package when it is installed;
  without it, a WordPiece one (BERT, FinBERT) is still read, by :class:`WordPieceTokenizer`;
* a ``vocab.txt`` (one token per line, id = line number: BERT's format);
* a ``vocab.json`` mapping token -> id;
* a folder holding one of these (looked for in that order).

:class:`WordPieceTokenizer` does what BERT's reference tokenizer does for Latin text: lower-case
and strip accents (optional), split on whitespace and punctuation, split words into the longest
vocabulary pieces (continuations prefixed "##"; a word that cannot be split becomes ``[UNK]``),
add ``[CLS]``/``[SEP]`` when the vocabulary has them, truncate to ``max_length`` and pad with
``[PAD]``. With a plain word vocabulary (no "##" pieces) it is a word -> id lookup.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from alphaloop.ml.errors import ModelLoadError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")


class TextTokenizer(Protocol):
    """Texts -> (token ids, attention mask), both int64 ``[batch, length]``."""

    max_length: int

    def encode_batch(self, texts: Sequence[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII symbols count as punctuation too ("$", "^", "`"), as in BERT
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class WordPieceTokenizer:
    """BERT-style WordPiece tokenization from a vocabulary (see the module docstring)."""

    def __init__(self, vocab: Mapping[str, int], *, lowercase: bool = True, strip_accents: bool | None = None,
                 max_length: int = 128, unk_token: str = "[UNK]", pad_token: str = "[PAD]",
                 cls_token: str | None = "[CLS]", sep_token: str | None = "[SEP]",
                 add_special_tokens: bool | None = None, continuation_prefix: str = "##",
                 max_chars_per_word: int = 100, source: str = "vocabulary"):
        if not vocab:
            raise ModelLoadError(f"{source}: the vocabulary is empty")
        self.vocab = {str(k): int(v) for k, v in vocab.items()}
        for token in (unk_token, pad_token):
            if token not in self.vocab:
                raise ModelLoadError(f"{source}: the vocabulary has no {token!r} token")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.max_length = max_length
        self.unk_id, self.pad_id = self.vocab[unk_token], self.vocab[pad_token]
        have_specials = cls_token in self.vocab and sep_token in self.vocab
        self.add_special_tokens = have_specials if add_special_tokens is None else add_special_tokens
        if self.add_special_tokens and not have_specials:
            raise ModelLoadError(f"{source}: add_special_tokens needs {cls_token!r} and {sep_token!r} in the vocabulary")
        self.cls_id = self.vocab.get(cls_token) if cls_token else None
        self.sep_id = self.vocab.get(sep_token) if sep_token else None
        self.prefix = continuation_prefix
        self.max_chars_per_word = max_chars_per_word

    # ------------------------------------------------------------------ text -> tokens

    def _words(self, text: str) -> list[str]:
        # BERT's clean-up: whitespace to spaces, control characters dropped
        text = "".join(" " if ch.isspace() else ch for ch in text
                       if ch.isspace() or (ch != "\ufffd" and unicodedata.category(ch) not in ("Cc", "Cf")))
        if self.lowercase:
            text = text.lower()
        if self.strip_accents:
            text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for ch in chunk:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(ch)
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> list[int]:
        if len(word) > self.max_chars_per_word:
            return [self.unk_id]
        if word in self.vocab:
            return [self.vocab[word]]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (before special tokens and truncation)."""
        inverse = {v: k for k, v in self.vocab.items()}
        return [inverse[i] for w in self._words(text) for i in self._pieces(w)]

    def encode(self, text: str) -> list[int]:
        """Token ids with special tokens, truncated to ``max_length``."""
        room = self.max_length - (2 if self.add_special_tokens else 0)
        ids = [i for w in self._words(text) for i in self._pieces(w)][: max(room, 0)]
        if self.add_special_tokens:
            ids = [self.cls_id, *ids, self.sep_id]  # type: ignore[list-item]
        return ids

    def encode_batch(self, texts: Sequence[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and attention mask, padded to the longest text (or to ``pad_to``, truncating)."""
        return _pad([self.encode(t) for t in texts], self.pad_id, pad_to)


class HuggingFaceTokenizer:
    """A ``tokenizer.json`` through the ``tokenizers`` package (used when it is installed)."""

    def __init__(self, tokenizer: Any, *, max_length: int = 128, pad_token: str = "[PAD]", source: str = ""):
        self._tok = tokenizer
        self.max_length = max_length
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            pad_id = tokenizer.token_to_id("<pad>")
        if pad_id is None:
            raise ModelLoadError(f"{source}: the tokenizer has no {pad_token!r} (or '<pad>') token")
        self.pad_id = int(pad_id)

    def encode_batch(self, texts: Sequence[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return _pad([list(e.ids) for e in self._tok.encode_batch(list(texts))], self.pad_id, pad_to)


def _pad(rows: list[list[int]], pad_id: int, pad_to: int | None) -> tuple[np.ndarray, np.ndarray]:
    length = pad_to if pad_to is not None else max((len(r) for r in rows), default=1)
    length = max(length, 1)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[:length]
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def load_tokenizer(path: str | Path, *, max_length: int = 128, lowercase: bool | None = None) -> TextTokenizer:
    """A tokenizer from a file or folder (see the module docstring). ``lowercase`` overrides
    what the file says (default: the file's setting, else True). Raises :class:`ModelLoadError`
    naming the path when it is missing or unreadable."""
    p = Path(path)
    if p.is_dir():
        found = next((p / n for n in TOKENIZER_FILES if (p / n).is_file()), None)
        if found is None:
            raise ModelLoadError(f"{p}: no tokenizer in this folder (looked for {', '.join(TOKENIZER_FILES)})")
        p = found
    if not p.is_file():
        raise ModelLoadError(f"{p}: tokenizer file not found")
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{p}: cannot read the tokenizer: {e}") from e
    if p.suffix.lower() != ".json":
        vocab = {line.rstrip("\r"): i for i, line in enumerate(raw.split("\n")) if line.rstrip("\r")}
        return WordPieceTokenizer(vocab, lowercase=True if lowercase is None else lowercase,
                                  max_length=max_length, source=str(p))
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{p}: not valid JSON: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return _from_hf_json(p, data, max_length=max_length, lowercase=lowercase)
    if isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, int) for k, v in data.items()):
        return WordPieceTokenizer(data, lowercase=True if lowercase is None else lowercase,
                                  max_length=max_length, source=str(p))
    raise ModelLoadError(f"{p}: expected a Hugging Face tokenizer.json or a token -> id mapping")


def _from_hf_json(p: Path, data: dict[str, Any], *, max_length: int, lowercase: bool | None) -> TextTokenizer:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        Tokenizer = None
    if Tokenizer is not None and lowercase is None:
        try:
            return HuggingFaceTokenizer(Tokenizer.from_file(str(p)), max_length=max_length, source=str(p))
        except Exception as e:  # the library's own errors are plain Exceptions
            raise ModelLoadError(f"{p}: the tokenizers package cannot load it: {e}") from e
    model = data["model"]
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ModelLoadError(f"{p}: a {model.get('type')!r} tokenizer needs the 'tokenizers' package "
                             "(pip install tokenizers); without it only WordPiece tokenizer.json files are read")
    norm = data.get("normalizer") or {}
    file_lower = bool(norm.get("lowercase", True)) if norm.get("type") == "BertNormalizer" else True
    strip = norm.get("strip_accents") if norm.get("type") == "BertNormalizer" else None
    return WordPieceTokenizer(model["vocab"], lowercase=file_lower if lowercase is None else lowercase,
                              strip_accents=strip, max_length=max_length,
                              unk_token=model.get("unk_token", "[UNK]"),
                              continuation_prefix=model.get("continuing_subword_prefix", "##"),
                              max_chars_per_word=int(model.get("max_input_chars_per_word", 100)), source=str(p))
