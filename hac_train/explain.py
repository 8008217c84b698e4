"""Explanations: the per-frame attention of a clip (Fig. 5) and class-activation heat maps (Fig. 6).

* Attention strip: the k sampled frames with the self-attention weight α^i
  (eq. 2) of each and the spatial attention map ω^i (eq. 5) over it.
* CAM: Grad-CAM on the last convolutional layer (ResNet ``layer4``): the
  feature maps weighted by the spatially averaged gradient of the predicted
  class, ReLU, one map per frame, scaled to [0, 1] over the clip. CAM proper
  needs GAP → FC right after the convolutions; HAC has attention and a GRU
  between them, and Grad-CAM is CAM's generalisation to such heads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hac_runtime.clips import normalize
from hac_runtime.spec import Preprocess
from hac_train import plots


def grad_cam(model, x: torch.Tensor, target: int | None = None) -> tuple[np.ndarray, int]:
    """Heat maps ``(k, h, w)`` in [0, 1] for clip ``x`` (1, k, 3, S, S) and the class explained."""
    model.eval()
    store = {}

    def hook(_, __, output):
        output.retain_grad()
        store["maps"] = output

    handle = model.trunk.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x.requires_grad_(False))
            cls = int(logits.argmax(1)) if target is None else int(target)
            model.zero_grad(set_to_none=True)
            logits[0, cls].backward()
    finally:
        handle.remove()
    maps, grads = store["maps"].detach(), store["maps"].grad.detach()  # (k, C, h, w)
    weights = grads.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * maps).sum(1)).float().numpy()
    peak = cam.max()
    return (cam / peak if peak > 0 else cam), cls


def attention(model, x: torch.Tensor) -> tuple[np.ndarray, dict]:
    """Softmax probabilities and the attention weights (``self`` (k,), ``spatial`` (k, h, w)) of one clip."""
    model.eval()
    with torch.no_grad():
        logits, attn = model(x, return_attention=True)
    return torch.softmax(logits, 1)[0].numpy(), {k: v[0].numpy() for k, v in attn.items()}


def explain_clip(model, faces_rgb: np.ndarray, preprocess: Preprocess, classes, out_dir, name: str,
                 true_label: str | None = None) -> list[Path]:
    """Write ``<name>-attention.png`` (when the model has attention) and ``<name>-cam.png``; returns the paths."""
    model = model.cpu().float()
    x = torch.from_numpy(normalize(faces_rgb, preprocess.mean, preprocess.std))[None]
    probs, attn = attention(model, x)
    pred = int(probs.argmax())
    truth = f"true {true_label}, " if true_label else ""
    title = f"{name}: {truth}predicted {classes[pred]} ({probs[pred]:.2f})"
    out_dir = Path(out_dir)
    paths = []
    if attn:
        paths.append(plots.attention_strip(faces_rgb, attn.get("self"), attn.get("spatial"),
                                           out_dir / f"{name}-attention.png", title))
    cam, cls = grad_cam(model, x.clone())
    paths.append(plots.cam_strip(faces_rgb, cam, out_dir / f"{name}-cam.png", f"{title}; Grad-CAM of {classes[cls]}"))
    return paths


def explain_dataset(model, dataset, out_dir, n: int, classes) -> list[Path]:
    """Explanations for up to ``n`` clips of a ``ClipDataset``, spread over the classes (centre frames)."""
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(dataset.labels):
        by_class.setdefault(y, []).append(i)
    order, rank = [], 0
    while len(order) < min(n, len(dataset)):
        added = False
        for y in sorted(by_class):
            if rank < len(by_class[y]) and len(order) < n:
                order.append(by_class[y][rank])
                added = True
        if not added:
            break
        rank += 1
    paths = []
    for i in order:
        clip = dataset.clips[i]
        safe = clip.sample.key.replace("/", "_").replace("\\", "_")
        paths += explain_clip(model, dataset.faces(i), dataset.preprocess, classes, out_dir, safe, clip.sample.label)
    return paths
