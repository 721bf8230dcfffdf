"""The search vocabulary becomes the Optuna distributions it says."""

from __future__ import annotations

import optuna.distributions as od
import pytest

from ray_unlearn.hparams import default_space, describe, make_params, parse_search
from ray_unlearn.registry import METHODS
from ray_unlearn.space import SearchDim


def test_dims_become_optuna_distributions():
    assert SearchDim("float", low=1e-4, high=0.1, log=True).to_optuna() == od.FloatDistribution(1e-4, 0.1, log=True)
    assert SearchDim("int", low=5, high=50).to_optuna() == od.IntDistribution(5, 50)
    assert SearchDim("float", low=0.0, high=1.0, step=0.25).to_optuna() == od.FloatDistribution(0.0, 1.0, step=0.25)
    assert SearchDim("categorical", choices=(1, 5, 10)).to_optuna() == od.CategoricalDistribution([1, 5, 10])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_declared_ranges_parse_back_within_valid_bounds(name):
    """Every method's declared search range is a valid `search:` entry for itself."""
    params = METHODS[name].Params
    declared = default_space(params)
    assert declared, f"{name} declares nothing to search"
    reparsed = parse_search(params, {k: d.to_yaml() for k, d in declared.items()})
    assert reparsed == declared
    for dim in declared.values():
        dim.to_optuna()
    make_params(params, {})  # defaults are valid
    for p in describe(params):
        assert p.help, f"{name}.{p.name} has no help text"
