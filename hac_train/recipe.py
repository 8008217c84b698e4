"""Training recipes (§4.3) and the optimiser / learning-rate schedule they define.

The paper: SGD, momentum 0.9, weight decay 1e-4, batch 16, cross-entropy, the
learning rate ×0.8 every 20 epochs; CK+ and Oulu-CASIA 1e-3 for 100 epochs,
AFEW 1e-4 for 200 epochs (from ImageNet weights: pass ``--pretrained``).

``scratch`` is this toolkit's preset for generic folders and CSV manifests, chosen
by measurement on ``hac-synth`` data (benchmarks/train.md) for training from
random weights in few epochs: still SGD with momentum 0.9, but a 10× higher
rate (1e-2) reached by a one-epoch linear warm-up and decayed by a cosine to
zero, batch 8 (twice the updates per epoch), weight decay 5e-4 and dropout 0.3
before the classifier. Any field can be overridden from the command line.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch

from hac_runtime.errors import HacError

SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float
    epochs: int
    batch_size: int = 16
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"        # step: ×lr_gamma every lr_step epochs (§4.3); cosine: to zero over the run
    lr_step: int = 20
    lr_gamma: float = 0.8
    warmup_epochs: float = 0.0
    dropout: float = 0.0
    augment: bool = True
    label_smoothing: float = 0.0
    repeats: int = 1              # passes over the training clips per epoch (fresh random frames each time)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def override(self, **kw) -> "Recipe":
        r = replace(self, **{k: v for k, v in kw.items() if v is not None})
        if r.lr <= 0 or r.epochs < 1 or r.batch_size < 1 or r.repeats < 1 or not 0 <= r.dropout < 1:
            raise HacError(f"invalid recipe: lr={r.lr}, epochs={r.epochs}, batch size={r.batch_size}, "
                           f"repeats={r.repeats}, dropout={r.dropout}")
        if r.schedule not in SCHEDULES:
            raise HacError(f"unknown schedule {r.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        return r


PRESETS = {
    "ck+": Recipe("ck+", lr=1e-3, epochs=100),
    "oulu": Recipe("oulu", lr=1e-3, epochs=100),
    "afew": Recipe("afew", lr=1e-4, epochs=200),
    "scratch": Recipe("scratch", lr=1e-2, epochs=30, batch_size=8, weight_decay=5e-4, schedule="cosine",
                      warmup_epochs=1.0, dropout=0.3, repeats=3),
}
DATASET_PRESET = {"ck+": "ck+", "oulu": "oulu", "afew": "afew", "folders": "scratch", "csv": "scratch",
                  "unlabelled": "scratch"}


def preset(name: str) -> Recipe:
    if name not in PRESETS:
        raise HacError(f"unknown recipe {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay (the paper's L2 regularisation) on weights, not on biases and norms."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, momentum=recipe.momentum)


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base rate at optimiser step ``step`` (0-based)."""
    epoch = step / max(1, steps_per_epoch)
    warm = recipe.warmup_epochs * steps_per_epoch
    f = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    if recipe.schedule == "step":
        return f * recipe.lr_gamma ** int(epoch // recipe.lr_step)
    total = recipe.epochs * steps_per_epoch
    return f * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


def make_scheduler(optimizer, recipe: Recipe, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per batch; its state (the step count) goes into ``last.pt``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(recipe, s, steps_per_epoch))
