"""Detector registry: built-in and user detectors, looked up by name."""

from __future__ import annotations

from typing import Any

from alphaloop.patterns.base import Detector, Param
from alphaloop.patterns.errors import PatternError, UnknownDetectorError

_DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Register a :class:`Detector` subclass under its ``name`` (usable as a class decorator)."""
    if not isinstance(cls, type) or not issubclass(cls, Detector):
        raise PatternError(f"register_detector expects a Detector subclass, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier():
        raise PatternError(f"{cls.__name__}.name must be an identifier-like string, got {name!r}")
    if not all(isinstance(p, Param) for p in cls.params.values()):
        raise PatternError(f"{cls.__name__}.params must map parameter names to Param(...)")
    known = _DETECTORS.get(name)
    if known is not None and known is not cls:
        raise PatternError(f"a detector named '{name}' is already registered ({known.__module__}."
                           f"{known.__qualname__})")
    _DETECTORS[name] = cls
    return cls


def detector_names() -> list[str]:
    return sorted(_DETECTORS)


def get_detector(name: str) -> type[Detector]:
    try:
        return _DETECTORS[name]
    except (KeyError, TypeError):
        raise UnknownDetectorError(f"unknown detector {name!r}; known detectors: "
                                   f"{', '.join(detector_names())}") from None


def create_detector(name: str, **params: Any) -> Detector:
    """A configured detector by name; unknown names and bad parameters raise PatternError."""
    return get_detector(name)(**params)
