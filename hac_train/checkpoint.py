"""Self-describing checkpoints, format ``hac-ckpt/2`` (CONTRACTS.md; ``hac-ckpt/1`` still loads).

A checkpoint is a ``torch.save`` dict holding the model config, the class names,
the preprocessing, the weights, the training facts and the metrics: everything
needed to rebuild, export or evaluate the model without the training run.
``hac-ckpt/2`` adds ``weights_sha256``, a checksum of the weights (names, dtypes,
shapes and bytes, in order), checked on every load: a flipped byte is refused.
A ``hac-ckpt/1`` file (no checksum) loads with a note saying so.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from hac_runtime import __version__
from hac_runtime.atomic import atomic_path, disk_is_full, os_reason
from hac_runtime.engines.base import sha256_of
from hac_runtime.errors import HacError, one_line
from hac_runtime.spec import Preprocess
from hac_train.model import HACConfig, HACNet

FORMAT = "hac-ckpt/2"
OLD_FORMATS = ("hac-ckpt/1",)  #: still read; they carry no checksum
REQUIRED = ("format", "model", "classes", "preprocess", "state_dict", "train", "metrics")


def save_checkpoint(path, model: HACNet, classes, preprocess: Preprocess, train: dict | None = None,
                    metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write a ``hac-ckpt/1`` file atomically. ``extra`` holds resumable state (optimiser, RNG…)."""
    classes = list(classes)
    if len(classes) != model.config.num_classes:
        raise HacError(f"{len(classes)} class names for a model with {model.config.num_classes} outputs")
    check_k(preprocess, model.config, "cannot save the checkpoint")
    ckpt = {
        "format": FORMAT,
        "toolkit_version": __version__,
        "model": model.config.to_dict(),
        "classes": classes,
        "preprocess": preprocess.to_dict(),
        "state_dict": (state := {k: v.detach().cpu() for k, v in model.state_dict().items()}),
        "weights_sha256": weights_sha256(state),
        "train": dict(train or {}),
        "metrics": dict(metrics or {}),
    }
    if extra:
        ckpt.update(extra)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)
    except (OSError, RuntimeError) as e:  # torch.save on a full disk: "[enforce fail at inline_container.cc…]"
        if isinstance(e, OSError):
            why = os_reason(e)
        else:
            why = "no space left on device" if disk_is_full(path.parent) else one_line(e)
        raise HacError(f"{path}: cannot write the checkpoint ({why}); the previous one is kept") from None
    return path


def read_checkpoint(path) -> dict:
    """Read and validate a checkpoint dict; any problem is a one-line HacError naming the file."""
    path = Path(path)
    if not path.exists():
        raise HacError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise HacError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise HacError(f"{path}: empty file, not a checkpoint")
    if not zipfile.is_zipfile(path):
        raise HacError(f"{path}: not a PyTorch checkpoint (truncated or a different file type)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt archives raise many types
        msg = one_line(e)[:120]
        raise HacError(f"{path}: unreadable checkpoint (truncated or corrupt: {msg})") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise HacError(f"{path}: not a HAC checkpoint (no 'format' key; a plain state dict or another tool's file?)")
    if ckpt["format"] != FORMAT and ckpt["format"] not in OLD_FORMATS:
        raise HacError(f"{path}: checkpoint format {ckpt['format']!r} is not supported by this toolkit (expects {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise HacError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if ckpt["format"] in OLD_FORMATS:
        import warnings

        warnings.warn(f"{path}: {ckpt['format']} checkpoint: no weights checksum to verify (re-save it as {FORMAT})",
                      stacklevel=2)
    elif ckpt.get("weights_sha256") != weights_sha256(ckpt["state_dict"]):
        raise HacError(f"{path}: corrupt checkpoint: its weights do not match their checksum (a damaged copy?)")
    ckpt["preprocess"] = Preprocess.from_dict(ckpt["preprocess"], f"{path}")
    return ckpt


def check_k(preprocess: Preprocess, config: HACConfig, where: str) -> None:
    """The one cross-check of k: the frames sampled per clip are the frames the model attends over (eq. 2)."""
    if preprocess.k != config.k:
        raise HacError(f"{where}: preprocess k={preprocess.k} differs from the model's k={config.k}")


def weights_sha256(state: dict) -> str:
    """SHA-256 over every tensor of a state dict: name, dtype, shape and bytes, in key order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            h.update(f"{name}={t!r};".encode())
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_checkpoint(path, device="cpu") -> tuple[HACNet, dict]:
    """Rebuild the model from a checkpoint, in eval mode. Returns ``(model, ckpt_dict)``."""
    ckpt = read_checkpoint(path)
    try:
        config = HACConfig.from_dict(ckpt["model"])
    except (TypeError, HacError) as e:
        raise HacError(f"{path}: bad model config: {e}") from None
    if len(ckpt["classes"]) != config.num_classes:
        raise HacError(f"{path}: {len(ckpt['classes'])} class names for {config.num_classes} outputs")
    check_k(ckpt["preprocess"], config, str(path))
    model = HACNet(config)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = one_line(e)
        raise HacError(f"{path}: weights do not match the model config ({first})") from None
    return model.to(device).eval(), ckpt


def file_sha256(path) -> str:
    """SHA-256 of a file (the runtime's helper: one implementation)."""
    return sha256_of(path)
