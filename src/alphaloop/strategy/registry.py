"""Find a strategy by registered name or by ``path/to/file.py:ClassName``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from alphaloop.core.errors import StrategyError
from alphaloop.strategy.base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available by its ``name``."""
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)) or not cls.name:
        raise StrategyError(f"{cls!r} must be a Strategy subclass with a non-empty name")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    from alphaloop.strategy import builtin  # noqa: F401  (registers on import)


def _from_file(ref: str) -> type[Strategy]:
    path_text, _, cls_name = ref.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise StrategyError(f"strategy file not found: {path}")
    module_name = f"alphaloop_user_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"cannot import strategy file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file can fail in any way; report where
        raise StrategyError(f"{path}: error while importing: {type(e).__name__}: {e}") from e
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, Strategy) and v is not Strategy]
        raise StrategyError(f"{path}: no class {cls_name!r}; strategies in the file: {', '.join(found) or 'none'}")
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyError(f"{path}: {cls_name} is not a subclass of alphaloop.strategy.Strategy")
    return cls


def strategy_class(ref: str) -> type[Strategy]:
    if ":" in ref and ref.rpartition(":")[0].endswith(".py"):
        return _from_file(ref)
    _load_builtins()
    try:
        return _REGISTRY[ref]
    except KeyError:
        raise StrategyError(f"unknown strategy {ref!r}; known: {', '.join(sorted(_REGISTRY))} "
                            "(or path/to/file.py:ClassName)") from None


def load_strategy(ref: str, params: dict[str, Any] | None = None) -> Strategy:
    """Build a strategy instance; parameter names and types are checked here."""
    cls = strategy_class(ref)
    if inspect.isabstract(cls):
        raise StrategyError(f"strategy {ref!r} does not implement on_bar")
    return cls(**(params or {}))
