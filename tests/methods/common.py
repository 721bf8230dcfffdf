"""Helpers shared by the method tests."""

from __future__ import annotations

import torch

from ray_unlearn.methods import METHODS, Context, UnlearnData
from ray_unlearn.tasks.classification.references import References


def unlearn_data(refs: References) -> UnlearnData:
    s = refs.splits
    return UnlearnData(forget=s.forget, retain=s.retain, num_classes=s.info.num_classes, input_range=s.info.input_range)


def quick_params(name: str, **changes):
    """The method's defaults with its declared small budget (`quick`: few epochs, cheap attacks) and `changes`."""
    from ray_unlearn.hparams import make_params
    from ray_unlearn.methods.catalog import CATALOG

    entry = CATALOG[name]
    return make_params(entry.Params, {**entry.quick, **changes})


def run_method(name: str, refs: References, seed: int = 0, data: UnlearnData | None = None, **changes):
    torch.set_num_threads(1)
    ctx = Context(seed=seed)
    model = METHODS[name]().run(refs.model("original", torch.device("cpu")), data or unlearn_data(refs), quick_params(name, **changes), ctx)
    return model, ctx


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class TrainingRecorder:
    """What reaches the loss during training: the input of every train-mode forward of `model`
    (and of its deep copies, which share the hook) and, for each CE call that follows one, the
    (input, target) pair. A spy on torch's cross_entropy; our own code runs unchanged.

    `mark()` (e.g. from Context.on_epoch) closes an epoch; `epochs()` lists them."""

    def __init__(self, model: torch.nn.Module, monkeypatch) -> None:
        import torch.nn.functional as F

        self.inputs: list[torch.Tensor | None] = []
        self.pairs: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        self._last: torch.Tensor | None = None

        def pre_hook(module, args):
            self._last = args[0].detach().clone() if module.training else None
            if module.training:
                self.inputs.append(self._last)

        model.register_forward_pre_hook(pre_hook)
        real = F.cross_entropy

        def spy(input, target, *args, **kwargs):
            if self._last is not None:
                self.pairs.append((self._last, target.detach().clone()))
                self._last = None
            return real(input, target, *args, **kwargs)

        monkeypatch.setattr(F, "cross_entropy", spy)

    def mark(self, *_args) -> None:
        self.inputs.append(None)
        self.pairs.append(None)

    def epochs(self, what: str = "pairs") -> list[list]:
        out, cur = [], []
        for item in getattr(self, what):
            if item is None:
                out.append(cur)
                cur = []
            else:
                cur.append(item)
        return out


def row_keys(x: torch.Tensor, y: torch.Tensor | None = None) -> list:
    """Hashable exact identity of each row (and its label)."""
    rows = [r.numpy().tobytes() for r in x.detach().cpu().contiguous()]
    return rows if y is None else list(zip(rows, y.tolist()))
