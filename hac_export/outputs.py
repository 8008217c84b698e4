"""What every exported artifact returns: the logits and, where the model has self-attention, α (eq. 2).

``α^i = σ(θᵀT^i)``, one weight per sampled frame, in (0, 1): which frames the clip's
feature drew on (eq. 3 normalises them, ``α^i / Σ_j α^j``). The graph returns them as a
second output, ``alpha (batch, k)``, so every engine gives them with the decision, and
``hac-run`` writes them into each result line. A control-group model without attention
(``attention="none"``) returns the logits only.
"""
from __future__ import annotations

LOGITS = "logits"
ALPHA = "alpha"


def has_alpha(model) -> bool:
    return model.config.attention != "none"


def output_names(model) -> list[str]:
    return [LOGITS, ALPHA] if has_alpha(model) else [LOGITS]


def exportable(model):
    """The module the exporters trace: ``model`` → ``(logits (B, classes), α (B, k))`` where it has α.

    A shallow copy of ``model`` (same parameters) whose class returns both: the module tree, and so the
    exported graph's name scopes (``trunk`` for the ResNet: fp16/int8 find it by them), stay the model's."""
    if not has_alpha(model):
        return model
    import copy

    def forward(self, x):
        logits, attention = type(model).forward(self, x, return_attention=True)
        return logits, attention["self"]

    wrapped = copy.copy(model)
    wrapped.__class__ = type(f"{type(model).__name__}WithAttention", (type(model),), {"forward": forward})
    return wrapped  # no .eval() here: the copy shares its submodules with ``model`` (exporters get it in eval)
