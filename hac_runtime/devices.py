"""One device rule for every package: ``auto | cpu | cuda | cuda:N`` → ``cpu`` or ``cuda:N``.

Each backend says whether it can reach a CUDA GPU (torch, ONNX Runtime's providers…) and how to get one;
the rule and its errors are written here once. Imports neither torch nor a backend.
"""
from __future__ import annotations

from hac_runtime.errors import HacError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def parse_device(device) -> tuple[str, int | None]:
    """``"auto" | "cpu" | "cuda" | "cuda:N"`` → (kind, index); the index is None unless written."""
    text = str(device or "auto").strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return text, None
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise HacError(f"unknown device {device!r}; use {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")


def resolve_device(device, cuda_available: bool, no_cuda: str = "no CUDA GPU is visible here",
                   local_rank: int = 0) -> str:
    """``device`` → ``"cpu"`` or ``"cuda:N"``. ``auto`` takes CUDA where ``cuda_available``; an explicit
    ``cuda`` without it is one line, ``device cuda requested but <no_cuda>``. A plain ``cuda`` (or ``auto``)
    is GPU ``local_rank`` (a DDP worker's own)."""
    kind, index = parse_device(device)
    if kind == "auto":
        kind = "cuda" if cuda_available else "cpu"
    if kind == "cpu":
        return "cpu"
    if not cuda_available:
        raise HacError(f"device {device} requested but {no_cuda}")
    return f"cuda:{local_rank if index is None else index}"
