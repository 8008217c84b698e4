"""The attention of eq. 3 and eq. 6 as the plain sigmoid ratios Σα·x / Σα — the form the model used before its
log-space normalisation — for tests that compare the two on the same weights."""
from __future__ import annotations

import types

import torch


def _self_ratio(self, t):
    alpha = torch.sigmoid(self.theta(t)).squeeze(-1)
    return alpha, (alpha.unsqueeze(-1) * t).sum(1) / alpha.sum(1, keepdim=True)


def _spatial_ratio(self, f):
    omega = torch.sigmoid(self.conv(f.mean(dim=1, keepdim=True)))
    return omega.squeeze(1), (omega * f).sum((2, 3)) / omega.sum((2, 3))


def ratio_forms(model):
    """``model`` (a HACNet with hybrid attention) switched to the ratio forms, in place; returned."""
    model.self_attention.forward = types.MethodType(_self_ratio, model.self_attention)
    model.spatial_attention.forward = types.MethodType(_spatial_ratio, model.spatial_attention)
    return model
