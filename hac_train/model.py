"""The Hybrid Attention Cascade network (paper §3, Fig. 1–2).

ResNet per frame → self-attention (eq. 2–3) → concatenation (eq. 4) →
spatial attention (eq. 5–6) → single-layer GRU(128) → FC.

The paper leaves the tensor shapes of eq. 3–6 open. This module reads them so
that a per-frame sequence reaches the GRU. With ``M^i`` the ResNet feature map
of frame ``i`` (C×h×w) and ``T^i = GAP(M^i)`` its pooled vector:

* eq. 2  ``α^i = σ(θᵀ T^i)``: one self-attention weight per frame, in (0, 1).
* eq. 3  ``f_att1 = Σ_i α^i T^i / Σ_i α^i``: the clip's self-attended feature,
  a convex combination of the frame features (fusion *across frames*).
* eq. 4  ``F_att1^i = cat(M^i, f_att1)`` along channels (``torch.cat(dim=1)``
  on the per-frame ``(B, C, h, w)`` maps, ``f_att1`` broadcast over h×w): every
  frame carries its own local features next to the clip context, 2C channels.
* eq. 5  ``ω^i = σ(conv3×3(avgpool1×1(F_att1^i)))``: the 1×1 average pooling
  averages the channels at each location, a 3×3 convolution (padding 1) and a
  sigmoid give one spatial weight per location, in (0, 1) — the heat maps of
  Fig. 5.
* eq. 6  ``F_att2^i = Σ_p ω^i(p) F_att1^i(p) / Σ_p ω^i(p)``: the weighted fusion,
  a convex combination of frame ``i``'s location features. The sum runs over
  locations ``p`` rather than frames so that the GRU receives the sequence
  ``F_att2^1 … F_att2^k``; the fusion across frames already entered via eq. 3–4.

Control groups (§4.5) are configurations: ``attention="none"`` feeds ``T^i`` to
the GRU (ResNet + GRU); ``attention="self"`` feeds ``GAP(F_att1^i)``;
``temporal="none"`` replaces the GRU by the mean of the sequence (ResNet +
hybrid attention). The GRU's last hidden state goes to the FC layer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from hac_runtime.errors import HacError

BACKBONES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
ATTENTIONS = ("hybrid", "self", "none")
TEMPORALS = ("gru", "none")


@dataclass(frozen=True)
class HACConfig:
    """Everything needed to rebuild the network; stored in checkpoints as ``model``."""

    backbone: str = "resnet50"
    num_classes: int = 7
    k: int = 5
    gru_hidden: int = 128
    attention: str = "hybrid"
    temporal: str = "gru"
    dropout: float = 0.0

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise HacError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.attention not in ATTENTIONS:
            raise HacError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTIONS)}")
        if self.temporal not in TEMPORALS:
            raise HacError(f"unknown temporal {self.temporal!r}; choose one of {', '.join(TEMPORALS)}")
        if self.num_classes < 2 or self.k < 1 or self.gru_hidden < 1:
            raise HacError(f"invalid model config: num_classes={self.num_classes}, k={self.k}, gru_hidden={self.gru_hidden}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HACConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise HacError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


def build_trunk(name: str, pretrained: str | None = None) -> nn.Sequential:
    """A torchvision ResNet without its pooling and FC: (N, 3, H, W) → (N, C, H/32, W/32).

    ``pretrained`` is a local state-dict file (torchvision's ImageNet weights,
    downloaded by the user); nothing is downloaded here.
    """
    import torchvision

    # From random weights, each bottleneck block of ResNet50 starts as the identity (its last BN scale 0,
    # Goyal et al. 2017): without it ResNet50 stayed at chance for 12 epochs on small data (benchmarks/int8.md);
    # the basic-block ResNet18/34 learn without it and keep torchvision's initialisation.
    net = getattr(torchvision.models, name)(weights=None, zero_init_residual=not pretrained and name == "resnet50")
    if pretrained:
        from pathlib import Path

        path = Path(pretrained)
        if not path.is_file():
            raise HacError(f"{pretrained}: pretrained weights file not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is bad input
            raise HacError(f"{pretrained}: not a loadable state dict ({type(e).__name__})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise HacError(f"{pretrained}: expected a state dict of {name} weights")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.startswith("fc.")]
        if missing or unexpected:
            raise HacError(
                f"{pretrained}: does not match {name} ({len(missing)} missing, {len(unexpected)} unexpected keys)"
            )
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


def log_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """log σ(z) = −softplus(−z): finite for every z, in PyTorch and in the exported graph.

    The normalised attention weights of eq. 3 and eq. 6, α^i / Σ_j α^j, equal
    softmax_i(log σ(z_i)). Dividing the sigmoids themselves is ill-conditioned
    once every σ saturates towards 0 (z ≪ 0, α ~ 1e-10): numerator and
    denominator are both tiny and PyTorch and ONNX Runtime round them
    differently. Not ``F.logsigmoid``: the ONNX exporter writes it as
    ``Log(Sigmoid(z))``, −inf below z ≈ −88. Softplus exports as ``Softplus``
    with PyTorch's linear branch (``Where``) and has the exact gradient
    everywhere (σ(−z); 1/2 at the attention's zero initialisation).
    """
    return -torch.nn.functional.softplus(-z)


class SelfAttention(nn.Module):
    """Eq. 2–3: per-frame weight α^i = σ(θᵀT^i) and the clip feature Σα^iT^i / Σα^i (as a softmax of log α)."""

    def __init__(self, dim: int):
        super().__init__()
        self.theta = nn.Linear(dim, 1)
        # Start at α = 0.5 for every frame: ResNet features are large, a random θ
        # saturates the sigmoid and its gradient vanishes.
        nn.init.zeros_(self.theta.weight)
        nn.init.zeros_(self.theta.bias)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # t: (B, k, C)
        z = self.theta(t).squeeze(-1)  # (B, k)
        alpha = torch.sigmoid(z)  # eq. 2, kept for visualisation
        weights = torch.softmax(log_sigmoid(z), dim=1)  # α^i / Σ_j α^j, normalised in log space
        fused = (weights.unsqueeze(-1) * t).sum(1)  # (B, C), eq. 3
        return alpha, fused


class SpatialAttention(nn.Module):
    """Eq. 5–6: ω = σ(conv3×3(avgpool1×1(F))) per location, then Σ_p ωF / Σ_p ω (as a softmax of log ω)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.weight)  # start at ω = 0.5: plain average pooling
        nn.init.zeros_(self.conv.bias)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # f: (N, C, h, w)
        pooled = f.mean(dim=1, keepdim=True)  # 1×1 average pooling across channels
        z = self.conv(pooled).flatten(1)  # (N, h·w)
        omega = torch.sigmoid(z)  # eq. 5, kept for the heat maps
        weights = torch.softmax(log_sigmoid(z), dim=1)  # ω(p) / Σ_p ω(p), normalised in log space
        fused = (f.flatten(2) * weights.unsqueeze(1)).sum(2)  # (N, C), eq. 6
        return omega.view(f.shape[0], *f.shape[2:]), fused


class HACNet(nn.Module):
    """Input ``(B, k, 3, H, W)`` normalised faces → logits ``(B, num_classes)``.

    ``forward(x, return_attention=True)`` also returns ``{"self": (B, k),
    "spatial": (B, k, h, w)}`` (entries absent for disabled blocks).
    """

    def __init__(self, config: HACConfig | None = None, pretrained: str | None = None, **overrides):
        super().__init__()
        config = config or HACConfig(**overrides)
        self.config = config
        c = BACKBONES[config.backbone]
        self.trunk = build_trunk(config.backbone, pretrained)
        seq_dim = c
        if config.attention in ("self", "hybrid"):
            self.self_attention = SelfAttention(c)
            seq_dim = 2 * c
        if config.attention == "hybrid":
            self.spatial_attention = SpatialAttention()
        self.feature_dim = seq_dim
        if config.temporal == "gru":
            self.gru = nn.GRU(seq_dim, config.gru_hidden, num_layers=1, batch_first=True)
            head_in = config.gru_hidden
        else:
            head_in = seq_dim
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(head_in, config.num_classes)

    def sequence(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The per-frame sequence fed to the temporal module, ``(B, k, D)``, and the attention weights."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"expected input (B, k, 3, H, W), got {tuple(x.shape)}")
        b, k = x.shape[:2]
        maps = self.trunk(x.flatten(0, 1))  # (B·k, C, h, w)
        c, h, w = maps.shape[1:]
        pooled = maps.mean((2, 3)).view(b, k, c)  # T^i
        attn: dict[str, torch.Tensor] = {}
        if self.config.attention == "none":
            return pooled, attn
        alpha, clip = self.self_attention(pooled)
        attn["self"] = alpha
        context = clip.unsqueeze(1).expand(b, k, c).reshape(b * k, c)
        if self.config.attention == "self":
            # GAP(cat(M^i, f_att1)) = cat(T^i, f_att1): no need to build the map.
            return torch.cat([pooled, context.view(b, k, c)], dim=2), attn
        f_att1 = torch.cat([maps, context[:, :, None, None].expand(b * k, c, h, w)], dim=1)  # eq. 4
        omega, f_att2 = self.spatial_attention(f_att1)
        attn["spatial"] = omega.view(b, k, h, w)
        return f_att2.view(b, k, 2 * c), attn

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        seq, attn = self.sequence(x)
        if self.config.temporal == "gru":
            _, hidden = self.gru(seq)
            feat = hidden[-1]
        else:
            feat = seq.mean(1)
        logits = self.fc(self.dropout(feat))
        return (logits, attn) if return_attention else logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["HACConfig", "HACNet", "SelfAttention", "SpatialAttention", "build_trunk", "count_parameters", "log_sigmoid"]
