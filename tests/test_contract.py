"""The method contract, one suite over the registry: every method of every task (and a plugin's, through
the same function) keeps it. The contract itself is written once, in `ray_unlearn.testing.check_method`."""

from __future__ import annotations

import pytest

from ray_unlearn.registry import CATALOG
from ray_unlearn.testing import check_method


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_registered_method_keeps_the_contract(name):
    check_method(CATALOG[name].load())


def test_the_contract_catches_a_method_that_ignores_its_seed():
    from ray_unlearn.methods.finetune import FineTune

    class Unseeded(FineTune):  # draws its batch order from the global generator, not ctx.generator
        name = "unseeded"

        def unlearn(self, model, data, hp, ctx):
            import torch

            torch.manual_seed(torch.seed())
            return super().unlearn(model, data, hp, type(ctx)(seed=int(torch.randint(0, 10**6, (1,))), on_epoch=ctx.on_epoch))

    with pytest.raises(AssertionError, match="not deterministic"):
        check_method(Unseeded)
