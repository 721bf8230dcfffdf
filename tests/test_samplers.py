"""Ray Tune pickles the searcher (at Tuner build and every experiment snapshot): every sampler a
sweep can use must survive a pickle round trip and keep proposing the same points after it."""

from __future__ import annotations

import pickle

import optuna
import pytest

from ray_unlearn.search import make_sampler


@pytest.mark.parametrize("kind, objectives", [("tpe", 1), ("tpe", 2), ("random", 1), ("random", 2)])
def test_sampler_survives_pickling_and_proposes_as_before(kind, objectives):
    sampler = make_sampler(kind, seed=3, objectives=objectives)
    copy = pickle.loads(pickle.dumps(sampler))
    assert type(copy) is type(sampler)
    directions = ["maximize"] * objectives

    def proposals(s):
        study = optuna.create_study(directions=directions, sampler=s)
        out = []
        for _ in range(4):
            trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            out.append(x)
            study.tell(trial, [x] * objectives if objectives > 1 else x)
        return out

    assert proposals(sampler) == proposals(copy)


def test_two_objectives_use_nsga2():
    assert isinstance(make_sampler("tpe", seed=0, objectives=2), optuna.samplers.NSGAIISampler)
