"""Search spaces: every family samples valid strategies; bad spaces are refused naming the parameter."""

from __future__ import annotations

import optuna
import pytest

from alphaloop.discovery.errors import DiscoveryInputError
from alphaloop.discovery.search_space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    default_space,
    family_names,
)
from alphaloop.strategy import load_strategy, strategy_names


def test_families_cover_sma_ml_and_a_pattern_strategy():
    assert {"sma_cross", "ml_multifactor", "pattern_follow"} <= set(family_names())
    default_space("pattern_follow")
    assert "pattern_follow" in strategy_names()


@pytest.mark.parametrize("family", ["sma_cross", "ml_multifactor", "pattern_follow"])
def test_samples_are_valid_strategies_within_bounds(family):
    space = default_space(family)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(50):
        params = space.suggest(study.ask())
        for d in space.dims:
            assert d.contains(params[d.name]), (d, params[d.name])
        assert space.invalid_reason(params) is None
        load_strategy(family, params)  # the strategy itself accepts it


def test_fast_below_slow_is_the_strategy_s_own_rule():
    space = SearchSpace("sma_cross", (IntParam("fast", 5, 50), IntParam("slow", 10, 60)))
    assert space.invalid_reason({"fast": 30, "slow": 20}) == "sma_cross needs 0 < fast < slow, got fast=30, slow=20"
    assert space.invalid_reason({"fast": 5, "slow": 20}) is None


def test_empty_space():
    with pytest.raises(DiscoveryInputError, match="empty search space"):
        SearchSpace("sma_cross", ())
    with pytest.raises(DiscoveryInputError, match="empty search space"):
        default_space("sma_cross", fixed={"fast": 10, "slow": 50})


def test_inverted_bounds_name_the_parameter():
    with pytest.raises(DiscoveryInputError, match="parameter 'slow': bounds inverted, low 90 > high 40"):
        SearchSpace("sma_cross", (IntParam("fast", 2, 10), IntParam("slow", 90, 40)))
    with pytest.raises(DiscoveryInputError, match="'threshold': bounds inverted"):
        default_space("ml_multifactor", bounds={"threshold": (0.9, 0.1)})


def test_fixed_value_outside_bounds_names_the_parameter():
    with pytest.raises(DiscoveryInputError, match=r"parameter 'fast' fixed at 100 is outside its bounds \(integers \[2, 30\]\)"):
        default_space("sma_cross", fixed={"fast": 100})
    with pytest.raises(DiscoveryInputError, match="parameter 'detector' fixed at 'vwap'"):
        default_space("pattern_follow", fixed={"detector": "vwap"})
    space = default_space("sma_cross", fixed={"fast": 10})  # inside: the dimension is replaced
    assert space.names == ["slow"] and space.spec({"slow": 50}).params == {"fast": 10, "slow": 50}


def test_other_bad_spaces():
    with pytest.raises(DiscoveryInputError, match=r"unknown parameter.*speed"):
        SearchSpace("sma_cross", (IntParam("speed", 1, 3),))
    with pytest.raises(DiscoveryInputError, match="unknown strategy family"):
        SearchSpace("no_such_strategy", (IntParam("fast", 1, 3),))
    with pytest.raises(DiscoveryInputError, match="no search space for strategy family 'nope'"):
        default_space("nope")
    with pytest.raises(DiscoveryInputError, match="declared twice"):
        SearchSpace("sma_cross", (IntParam("fast", 1, 3), IntParam("fast", 1, 3)))
    with pytest.raises(DiscoveryInputError, match=r"'lower'.*finite number"):
        SearchSpace("pattern_follow", (FloatParam("lower", float("nan"), 30.0),))
    with pytest.raises(DiscoveryInputError, match=r"'detector'.*non-empty tuple"):
        SearchSpace("pattern_follow", (CategoricalParam("detector", ()),))
    with pytest.raises(DiscoveryInputError, match="no valid strategy"):  # fast always >= slow
        SearchSpace("sma_cross", (IntParam("fast", 50, 60), IntParam("slow", 10, 20)))
    with pytest.raises(DiscoveryInputError, match="no searched parameter 'speed'"):
        default_space("sma_cross", bounds={"speed": (1, 2)})
