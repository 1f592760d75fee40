"""The numba kernels behind the vectorised indicators.

* Each kernel returns the same doubles, bit for bit (signed zeros included), as the pure-Python
  loop it replaced (``reference_loops``), on generated and market data, and fills its whole output.
* The compiled code has no fused multiply-add (which would round differently from the streaming
  Python arithmetic) and no fast-math flags.
* Importing ``alphaloop.indicators`` neither imports numba nor compiles; a kernel whose cache
  directory cannot be written warns and compiles in memory.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import reference_loops as ref
from hypothesis import given
from hypothesis import strategies as st
from indicator_helpers import FAST, MARKET_FILES, closes, load_market, ohlcv

from alphaloop.indicators import _kernels
from alphaloop.indicators._kernels import Kernel

_SENTINEL = 1234.5678  # pre-fills the outputs: any value a kernel leaves unwritten shows up


def _run(kernel: Kernel, *args):
    """Call a kernel with fresh outputs (one per ``o`` in its signature); return them."""
    size = len(args[0])
    outs = [np.full(size, _SENTINEL) for _ in range(kernel.args.count("o"))]
    kernel(*args, *outs)
    return outs[0] if len(outs) == 1 else tuple(outs)


def assert_bits(ours: np.ndarray, expected: np.ndarray) -> None:
    """NaN where NaN, and the same 64 bits everywhere else (so -0.0 differs from 0.0)."""
    ours, expected = np.asarray(ours, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert ours.shape == expected.shape
    nan = np.isnan(expected)
    mismatch = np.flatnonzero(np.isnan(ours) != nan)
    assert mismatch.size == 0, f"NaN positions differ at {mismatch[:10]}"
    diff = np.flatnonzero((ours.view(np.int64) != expected.view(np.int64)) & ~nan)
    assert diff.size == 0, f"differ at {diff[:10]}: {ours[diff[:3]]!r} vs {expected[diff[:3]]!r}"


def _walk(seed: int, size: int) -> dict[str, np.ndarray]:
    """A long random walk with flat stretches and zero-volume bars (several WMA blocks long)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, size) * (rng.random(size) > 0.1)
    c = 50.0 * np.cumprod(1.0 + steps)
    o = np.concatenate(([c[0]], c[:-1]))
    h = np.maximum(o, c) * (1.0 + rng.uniform(0.0, 0.01, size) * (rng.random(size) > 0.2))
    lo = np.minimum(o, c) * (1.0 - rng.uniform(0.0, 0.01, size) * (rng.random(size) > 0.2))
    v = rng.integers(0, 1000, size).astype(float) * (rng.random(size) > 0.1)
    return {"high": h, "low": lo, "close": c, "volume": v}


def _starts(size: int, cuts: list[int]) -> np.ndarray:
    inner = sorted({c for c in cuts if 0 < c < size})
    return np.array([0, *inner] if size else [0], dtype=np.int64)


def _check_all(d: dict[str, np.ndarray], n: int, ddof: int, cuts: list[int]) -> None:
    h, lo, c, v = d["high"], d["low"], d["close"], d["volume"]
    size = len(c)
    checks = {
        "ema": lambda: (_run(_kernels.ema, c, n), ref.ema(c, n)),
        "wma": lambda: (_run(_kernels.wma, c, n), ref.wma(c, n)),
        "rsi": lambda: (_run(_kernels.rsi, c, n + 1), ref.rsi(c, n + 1)),
        "true_range": lambda: (_run(_kernels.true_range, h, lo, c), ref.true_range(h, lo, c)),
        "atr": lambda: (_run(_kernels.atr, h, lo, c, n), ref.atr(h, lo, c, n)),
        "adx": lambda: (_run(_kernels.adx, h, lo, c, n + 1), ref.adx(h, lo, c, n + 1)),
        "rolling_std": lambda: (_run(_kernels.rolling_std, c, n + 1, ddof),
                                ref.rolling_std(c, n + 1, ddof)),
        "session_vwap": lambda: (_run(_kernels.session_vwap, (h + lo + c) / 3.0, v, _starts(size, cuts)),
                                 ref.session_vwap((h + lo + c) / 3.0, v, _starts(size, cuts))),
        "session_std": lambda: (_run(_kernels.session_std, (h + lo + c) / 3.0, v, _starts(size, cuts)),
                                ref.session_std((h + lo + c) / 3.0, v, _starts(size, cuts))),
    }
    for fast, slow, signal in ((n, n + 3, 2), (1, n + 1, 1), (3, 8, n)):
        checks[f"macd{fast, slow, signal}"] = (
            lambda f=fast, s=slow, g=signal: (_run(_kernels.macd, c, f, s, g), ref.macd(c, f, s, g)))
    for name, check in checks.items():
        ours, expected = check()
        pairs = zip(ours, expected) if isinstance(expected, tuple) else [(ours, expected)]
        for o, e in pairs:
            try:
                assert_bits(o, e)
            except AssertionError as exc:
                raise AssertionError(f"{name} (n={n}, ddof={ddof}): {exc}") from exc


@FAST
@given(d=ohlcv(max_size=120), n=st.integers(1, 12), ddof=st.sampled_from([0, 1]),
       cuts=st.lists(st.integers(0, 120), max_size=8))
def test_kernels_equal_the_python_loops_on_generated_bars(d, n, ddof, cuts) -> None:
    _check_all(d, n, ddof, cuts)


@FAST
@given(c=closes(max_size=200), n=st.integers(1, 40))
def test_ema_wma_rsi_equal_the_python_loops_on_generated_closes(c: np.ndarray, n: int) -> None:
    assert_bits(_run(_kernels.ema, c, n), ref.ema(c, n))
    assert_bits(_run(_kernels.wma, c, n), ref.wma(c, n))
    assert_bits(_run(_kernels.rsi, c, n + 1), ref.rsi(c, n + 1))
    for ddof in (0, 1):
        assert_bits(_run(_kernels.rolling_std, c, n + 1, ddof), ref.rolling_std(c, n + 1, ddof))


@pytest.mark.parametrize("n", [1, 2, 5, 14, 30, 41])
@pytest.mark.parametrize("seed", [1, 2])
def test_kernels_equal_the_python_loops_on_long_walks(seed: int, n: int) -> None:
    d = _walk(seed, 5000 + 7 * seed)  # WMA sums its windows in blocks of 2048 outputs
    _check_all(d, n, seed % 2, list(range(0, 5000, 24 + seed)))


@pytest.mark.parametrize("file", MARKET_FILES)
def test_kernels_equal_the_python_loops_on_market_data(file: str) -> None:
    df = load_market(file)
    d = {k: df[k].to_numpy() for k in ("high", "low", "close", "volume")}
    day = df.index.floor("D").asi8
    cuts = (np.flatnonzero(day[1:] != day[:-1]) + 1).tolist()
    for n in (3, 9, 14, 26):
        _check_all(d, n, n % 2, cuts)


def test_kernels_take_read_only_and_writable_inputs() -> None:
    c = _walk(3, 300)["close"]
    frozen = c.copy()
    frozen.flags.writeable = False
    assert_bits(_run(_kernels.ema, frozen, 10), _run(_kernels.ema, c, 10))
    assert_bits(_run(_kernels.rsi, frozen[5:], 7), ref.rsi(c[5:], 7))


# ----------------------------------------------------------------------------- machine code

_FUSED = {
    "x86_64": re.compile(r"\bv?f(?:n?m(?:add|sub)|maddsub|msubadd)\w*", re.IGNORECASE),
    "AMD64": re.compile(r"\bv?f(?:n?m(?:add|sub)|maddsub|msubadd)\w*", re.IGNORECASE),
    "aarch64": re.compile(r"\bf(?:n?madd|n?msub|mla|mls)\b", re.IGNORECASE),
    "arm64": re.compile(r"\bf(?:n?madd|n?msub|mla|mls)\b", re.IGNORECASE),
}


@pytest.mark.parametrize("kernel", _kernels.KERNELS, ids=lambda k: k.__name__)
def test_kernels_compile_without_fused_multiply_add(kernel: Kernel) -> None:
    """A fused a * b + c rounds once where the streaming Python rounds twice. The cached
    dispatcher cannot be inspected, so the kernel is compiled again here, uncached."""
    from numba import njit

    compiled = njit(_kernels.signature(kernel.args), error_model="numpy")(kernel.py_func)
    llvm = "\n".join(compiled.inspect_llvm().values())
    assert not re.search(r"\bfmuladd\b|@llvm\.fma\.", llvm), "FMA intrinsic in the LLVM IR"
    for flag in ("fast", "contract", "reassoc", "afn", "nnan", "ninf", "nsz", "arcp"):
        assert not re.search(rf"\b(?:fadd|fsub|fmul|fdiv|fneg|fcmp)\s+{flag}\b", llvm), flag
    fused = _FUSED.get(platform.machine())
    if fused is None:
        pytest.skip(f"no FMA mnemonics known for {platform.machine()}")
    asm = "\n".join(compiled.inspect_asm().values())
    found = sorted(set(fused.findall(asm)))
    assert not found, f"{kernel.__name__} uses fused multiply-add: {found}"


# ----------------------------------------------------------------------------- lazy compile, cache

def test_importing_the_indicators_does_not_import_numba() -> None:
    code = ("import sys, alphaloop.indicators as ind; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "assert all(k._compiled is None for k in ind._kernels.KERNELS), 'compiled'")
    src = str(Path(_kernels.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_kernel_without_a_writable_cache_warns_and_compiles(monkeypatch) -> None:
    from numba.core import caching, config

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    if impl is None or not hasattr(impl, "_locator_classes"):
        pytest.skip("this numba has no cache locator list to empty")
    monkeypatch.setattr(impl, "_locator_classes", [])  # numba: "no locator available" -> RuntimeError
    if hasattr(config, "CACHE_LOCATOR_CLASSES"):
        monkeypatch.setattr(config, "CACHE_LOCATOR_CLASSES", "")
    kernel = Kernel(_kernels.ema.py_func, _kernels.ema.args)
    c = _walk(4, 200)["close"]
    with pytest.warns(RuntimeWarning, match="cannot cache"):
        ours = _run(kernel, c, 5)
    assert_bits(ours, ref.ema(c, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiled once: no second warning
        assert_bits(_run(kernel, c, 6), ref.ema(c, 6))
