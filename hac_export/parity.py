"""Parity of an artifact with eager FP32 PyTorch on the same inputs (Polygraphy-like).

Each artifact runs at batch 1 (the first few samples one by one; a TensorRT
profile's minimum if higher) and at its largest batch (all samples, in full
batches; the last one filled by wrapping around); the reference is the eager FP32
model on the CPU. Per batch size and overall: ``max_abs`` (largest absolute
logit error), ``max_rel`` (``max_abs`` over the largest reference logit
magnitude), ``cosine_min`` (lowest per-sample cosine similarity of the logit
vectors), ``top1_agree`` (share of samples with the same arg-max) and ``n``.

Tolerances, by precision:

* ``fp32``: every logit within ``atol + rtol·|ref|`` (1e-4 each) and full top-1 agreement;
  ``fp32-gpu`` (FP32 artifacts run on CUDA, where convolutions may use TF32) 1e-3.
* ``fp16``: ``cosine_min >= 0.999``.
* ``int8``: ``top1_agree >= 0.98`` — judged on real clips (``--calib``) of a trained model; plus the
  accuracy change where the clips carry labels.
"""
from __future__ import annotations

import numpy as np

TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-4, "top1_agree_min": 1.0},
    "fp32-gpu": {"atol": 1e-3, "rtol": 1e-3, "top1_agree_min": 1.0},
    "fp16": {"cosine_min": 0.999},
    "int8": {"top1_agree_min": 0.98},
}
BATCH1_SAMPLES = 4


def tolerance_for(precision: str, device: str = "cpu", override: dict | None = None) -> dict:
    name = "fp32-gpu" if precision == "fp32" and str(device).startswith("cuda") else precision
    tol = dict(TOLERANCES[name])
    if override and precision in override:
        tol.update(override[precision])
    return {"name": name, **tol}


def compare(ref: np.ndarray, out: np.ndarray, tol: dict) -> dict:
    """Metrics of ``out`` against ``ref`` (both ``(n, classes)``) and the verdict under ``tol``."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    diff = np.abs(out - ref)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(norms > 0, (ref * out).sum(1) / np.maximum(norms, 1e-300), 1.0)
    metrics = {
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / max(float(np.abs(ref).max()), 1e-12)),
        "cosine_min": float(cos.min()),
        "top1_agree": float((ref.argmax(1) == out.argmax(1)).mean()),
        "n": int(len(ref)),
    }
    failures = []
    if "atol" in tol:
        excess = diff - (tol["atol"] + tol["rtol"] * np.abs(ref))
        if (excess > 0).any():
            failures.append(f"max_abs {metrics['max_abs']:.3g} exceeds atol {tol['atol']:g} + rtol {tol['rtol']:g}·|ref|")
    if "cosine_min" in tol and metrics["cosine_min"] < tol["cosine_min"]:
        failures.append(f"cosine_min {metrics['cosine_min']:.6f} < {tol['cosine_min']}")
    if "top1_agree_min" in tol and metrics["top1_agree"] < tol["top1_agree_min"]:
        failures.append(f"top1_agree {metrics['top1_agree']:.4f} < {tol['top1_agree_min']}")
    return {**metrics, "passed": not failures, "failures": failures}


def run_batches(infer, x: np.ndarray, batch: int) -> np.ndarray:
    """Outputs of ``infer`` over ``x`` in full batches of ``batch`` (the last filled by wrapping around)."""
    n = len(x)
    outs = []
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch) % n
        outs.append(np.asarray(infer(np.ascontiguousarray(x[idx])))[: min(batch, n - start)])
    return np.concatenate(outs)


def reference_logits(model, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """Eager FP32 PyTorch logits on the CPU."""
    import torch

    with torch.no_grad():
        return run_batches(lambda b: model(torch.from_numpy(b)).numpy(), x, batch)


def check_parity(engine, x: np.ndarray, ref: np.ndarray, max_batch: int, tol: dict,
                 labels: np.ndarray | None = None, min_batch: int = 1) -> dict:
    """Run ``engine`` at batch ``min_batch`` (1 unless a TensorRT profile starts higher) and ``max_batch`` on
    ``x``; compare with ``ref``; return the parity record."""
    n1 = min(BATCH1_SAMPLES, len(x))
    out1 = run_batches(engine.infer, x[:n1], min_batch)
    out_max = run_batches(engine.infer, x, max_batch)
    batches = [{"batch": min_batch, **compare(ref[:n1], out1, tol)},
               {"batch": max_batch, **compare(ref, out_max, tol)}]
    overall = compare(np.concatenate([ref[:n1], ref]), np.concatenate([out1, out_max]), tol)
    record = {**overall, "tolerance": tol, "batches": batches}
    if labels is not None and (labels >= 0).any():
        known = labels >= 0
        eager = float((ref[known].argmax(1) == labels[known]).mean())
        artifact = float((out_max[known].argmax(1) == labels[known]).mean())
        record["accuracy"] = {"eager": eager, "artifact": artifact, "change": artifact - eager, "n": int(known.sum())}
    return record
