"""Parameter spaces of the strategy families the discovery loop searches.

A :class:`SearchSpace` names a registered strategy (the family) and its searched dimensions
(integers, floats, choices, each with bounds); ``fixed`` parameters are passed as given. Optuna
samples the dimensions (``suggest``); the strategy's own ``validate`` then decides whether a point
is a valid strategy (``sma_cross`` needs fast < slow), so constraints live in one place only.

Default spaces keep constrained pairs apart (fast below slow) so almost every sample is valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alphaloop.core.errors import StrategyError
from alphaloop.core.strategy_spec import StrategySpec
from alphaloop.discovery.errors import DiscoveryInputError
from alphaloop.strategy import load_strategy

__all__ = ["CategoricalParam", "FloatParam", "IntParam", "SearchSpace", "default_space", "family_names"]


@dataclass(frozen=True, slots=True)
class IntParam:
    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def check(self, family: str) -> None:
        for k in ("low", "high", "step"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int):
                raise DiscoveryInputError(f"{family}: parameter '{self.name}': {k} must be an integer, got {v!r}")
        if self.low > self.high:
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': bounds inverted, low {self.low} > "
                                      f"high {self.high}")
        if self.step < 1 or (self.log and self.low < 1):
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': step must be >= 1 (and low >= 1 on "
                                      f"a log scale), got step {self.step}, low {self.low}")

    def contains(self, value: Any) -> bool:
        return (not isinstance(value, bool) and isinstance(value, int) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        return f"integers [{self.low}, {self.high}]" + (f" step {self.step}" if self.step != 1 else "")

    def suggest(self, trial: Any) -> int:
        return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True, slots=True)
class FloatParam:
    name: str
    low: float
    high: float
    log: bool = False

    def check(self, family: str) -> None:
        for k in ("low", "high"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise DiscoveryInputError(f"{family}: parameter '{self.name}': {k} must be a finite number, "
                                          f"got {v!r}")
        if self.low > self.high:
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': bounds inverted, low {self.low} > "
                                      f"high {self.high}")
        if self.log and self.low <= 0:
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': a log scale needs low > 0, got {self.low}")

    def contains(self, value: Any) -> bool:
        return (not isinstance(value, bool) and isinstance(value, int | float)
                and self.low <= value <= self.high)

    def describe(self) -> str:
        return f"numbers [{self.low}, {self.high}]"

    def suggest(self, trial: Any) -> float:
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True, slots=True)
class CategoricalParam:
    name: str
    choices: tuple[Any, ...]

    def check(self, family: str) -> None:
        if not isinstance(self.choices, tuple) or not self.choices:
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': needs a non-empty tuple of choices, "
                                      f"got {self.choices!r}")
        if len(set(self.choices)) != len(self.choices):
            raise DiscoveryInputError(f"{family}: parameter '{self.name}': duplicate choices {self.choices!r}")

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return f"one of {list(self.choices)}"

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))


Dimension = IntParam | FloatParam | CategoricalParam


@dataclass(frozen=True)
class SearchSpace:
    """``family``: a registered strategy name; ``dims``: searched parameters; ``fixed``: parameters
    passed unchanged (a fixed value for a parameter that also has a dimension must lie within its
    bounds, and then replaces the dimension)."""

    family: str
    dims: tuple[Dimension, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:
            raise DiscoveryInputError(f"a search space needs a strategy family name, got {self.family!r}")
        dims = tuple(self.dims)
        names = [getattr(d, "name", None) for d in dims]
        for d in dims:
            if not isinstance(d, IntParam | FloatParam | CategoricalParam):
                raise DiscoveryInputError(f"{self.family}: {d!r} is not an IntParam, FloatParam or CategoricalParam")
            d.check(self.family)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise DiscoveryInputError(f"{self.family}: parameter(s) {', '.join(dup)} declared twice")
        fixed = dict(self.fixed)
        for d in dims:
            if d.name in fixed and not d.contains(fixed[d.name]):
                raise DiscoveryInputError(f"{self.family}: parameter '{d.name}' fixed at {fixed[d.name]!r} is "
                                          f"outside its bounds ({d.describe()})")
        dims = tuple(d for d in dims if d.name not in fixed)
        if not dims:
            raise DiscoveryInputError(f"{self.family}: empty search space: no parameter left to search "
                                      f"(dimensions: {', '.join(map(str, names)) or 'none'}; fixed: "
                                      f"{', '.join(fixed) or 'none'})")
        try:
            known = load_strategy(self.family).params  # also: the family must exist
        except StrategyError as e:
            raise DiscoveryInputError(f"search space for unknown strategy family: {e}") from None
        unknown = sorted(({d.name for d in dims} | set(fixed)) - set(known))
        if unknown:
            raise DiscoveryInputError(f"{self.family}: unknown parameter(s) {', '.join(unknown)}; the strategy "
                                      f"has {', '.join(known)}")
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "fixed", fixed)
        self._check_feasible()

    def _check_feasible(self) -> None:
        # the corner of the box the defaults prefer: lows for every dim except the last of a pair
        lows = {d.name: (d.low if not isinstance(d, CategoricalParam) else d.choices[0]) for d in self.dims}
        highs = {d.name: (d.high if not isinstance(d, CategoricalParam) else d.choices[-1]) for d in self.dims}
        mixed = {**highs, **{d.name: lows[d.name] for d in self.dims[:1]}}
        if all(self.invalid_reason(p) for p in (lows, highs, mixed)):
            raise DiscoveryInputError(f"{self.family}: no valid strategy at the corners of the search space "
                                      f"({self.invalid_reason(mixed)}); check the bounds")

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample every dimension on an Optuna trial; return the full strategy parameters."""
        return {**self.fixed, **{d.name: d.suggest(trial) for d in self.dims}}

    def spec(self, sampled: Mapping[str, Any]) -> StrategySpec:
        return StrategySpec(self.family, {**self.fixed, **dict(sampled)})

    def invalid_reason(self, sampled: Mapping[str, Any]) -> str | None:
        """Why the strategy refuses these parameters (its own validation), or None when valid."""
        try:
            load_strategy(self.family, {**self.fixed, **dict(sampled)})
        except StrategyError as e:
            return str(e)
        return None

    def distributions(self) -> dict[str, Any]:
        """The Optuna distributions (for ``study.ask(fixed_distributions)`` and for tests)."""
        import optuna.distributions as od

        out: dict[str, Any] = {}
        for d in self.dims:
            if isinstance(d, IntParam):
                out[d.name] = od.IntDistribution(d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, FloatParam):
                out[d.name] = od.FloatDistribution(float(d.low), float(d.high), log=d.log)
            else:
                out[d.name] = od.CategoricalDistribution(list(d.choices))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "fixed": dict(self.fixed),
                "dims": {d.name: d.describe() for d in self.dims}}


_DEFAULTS: dict[str, tuple[tuple[Dimension, ...], dict[str, Any]]] = {
    # fast and slow ranges do not overlap: every sample is a valid crossover
    "sma_cross": ((IntParam("fast", 2, 30), IntParam("slow", 31, 200)), {}),
    # the technical and pattern weights and the trade threshold; ML and sentiment stay at their
    # defaults (discovery backtests run without a model or news, so those factors are missing)
    "ml_multifactor": ((IntParam("fast", 5, 20), IntParam("slow", 21, 60),
                        FloatParam("w_trend", 0.0, 1.0), FloatParam("w_momentum", 0.0, 1.0),
                        FloatParam("w_pattern", 0.05, 1.0), FloatParam("threshold", 0.1, 0.6)),
                       {"detectors": "ema_cross,rsi_extremes"}),
    "pattern_follow": ((CategoricalParam("detector", ("ema_cross", "rsi_extremes")),
                        IntParam("fast", 3, 20), IntParam("slow", 21, 80),
                        IntParam("rsi_period", 5, 30), FloatParam("lower", 15.0, 40.0),
                        FloatParam("upper", 60.0, 85.0), FloatParam("min_strength", 0.0, 0.8),
                        CategoricalParam("long_only", (False, True))), {}),
}


def family_names() -> list[str]:
    return sorted(_DEFAULTS)


def default_space(family: str, *, fixed: Mapping[str, Any] | None = None,
                  bounds: Mapping[str, Sequence[Any]] | None = None) -> SearchSpace:
    """The built-in space of ``family``; ``bounds`` overrides a dimension's (low, high) or choices,
    ``fixed`` pins parameters (each within its dimension's bounds)."""
    if family not in _DEFAULTS:
        raise DiscoveryInputError(f"no search space for strategy family {family!r}; known: "
                                  f"{', '.join(family_names())}")
    dims, base_fixed = _DEFAULTS[family]
    dims_by_name = {d.name: d for d in dims}
    for name, b in (bounds or {}).items():
        d = dims_by_name.get(name)
        if d is None:
            raise DiscoveryInputError(f"{family}: no searched parameter '{name}' to bound; searched: "
                                      f"{', '.join(dims_by_name)}")
        if isinstance(d, CategoricalParam):
            dims_by_name[name] = CategoricalParam(name, tuple(b))
        else:
            if len(b) != 2:
                raise DiscoveryInputError(f"{family}: parameter '{name}': bounds must be (low, high), got {b!r}")
            dims_by_name[name] = type(d)(name, b[0], b[1])
    return SearchSpace(family, tuple(dims_by_name.values()), {**base_fixed, **dict(fixed or {})})
