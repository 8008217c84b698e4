"""Parity of an artifact with eager FP32 PyTorch on the same real clips (Polygraphy-like).

Each artifact runs every clip at batch 1 (a TensorRT profile's minimum if
higher) and again in full batches of its largest batch (the last one filled by
wrapping around); the reference is the eager FP32 model on the CPU. Per batch
size, and overall as the worst of them:

* ``max_abs``: the largest absolute logit error;
* ``max_rel``: ``max_abs`` over the largest reference logit magnitude;
* ``logit_err_rel``: ``max_abs`` over the reference's logit range (its largest
  minus its smallest logit over all clips) — how far a logit moved, measured in
  the spread the classifier decides with;
* ``cosine_min``: the lowest per-clip cosine similarity of the logit vectors
  (whether the logits still point the same way);
* ``top1_agree``: share of clips with the same arg-max; ``n``: clips;
* ``top1_ties``: clips whose reference top-two margin is under ``top1_tie_rel`` of the logit range: a
  tolerated logit error can swap those two classes, so such a swap is rounding, not a wrong artifact;
  ``top1_agree_tie_aware``: ``top1_agree`` counting a tied clip whose two leading classes swapped as agreeing
  (a flip to any other class still counts against it), the one ``top1_agree_min`` bounds.

Where the artifact has the per-frame self-attention output (eq. 2's α, ``hac_export.outputs``) it is judged
too: ``alpha_max_abs``, the largest difference of a frame's α from eager's, bounded by ``alpha_atol`` —
results carry α to say which frames decided, so it must be the model's α.

``passed`` only when every figure is inside the precision's tolerance
(``TOLERANCES``, one table): top-1 alone can agree while the logits point
elsewhere (cosine 0.39 with top-1 1.0 was seen), so reduced precisions are
bounded by cosine and by the relative logit error as well.
"""
from __future__ import annotations

import numpy as np


#: α (a sigmoid, in (0, 1)) of reduced precisions; seen on a trained resnet18 checkpoint: FP16 3e-6, INT8 2e-4,
#: OpenVINO BF16 4e-5
ALPHA_ATOL = {"fp16": 0.01, "bf16": 0.02, "int8": 0.05}
#: precision → bounds; every key present is checked (``atol``/``rtol``: every logit within atol + rtol·|ref|).
#: ``top1_tie_rel`` is well under each precision's own error bound (``logit_err_rel_max``), so a tie is a
#: clip the reference itself barely decides: one FP16 flip at a 0.1 % margin failed a trained model that
#: had cosine 1.0000 and logit_err_rel 0.0005.
TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-4, "cosine_min": 0.99999, "top1_agree_min": 1.0, "top1_tie_rel": 1e-4,
             "alpha_atol": 1e-4},
    # FP32 artifacts on CUDA run with TF32 off (TensorRT clears its flag; AOTInductor compiles and runs under
    # hac_runtime.engines.cuda_graphs.tf32_mode(False)); cuDNN/cuBLAS kernels still sum in another order than
    # the CPU reference does.
    "fp32-gpu": {"atol": 1e-3, "rtol": 1e-3, "cosine_min": 0.9999, "top1_agree_min": 1.0, "top1_tie_rel": 1e-3,
                 "alpha_atol": 1e-3},
    "fp16": {"cosine_min": 0.999, "logit_err_rel_max": 0.02, "top1_agree_min": 0.98, "top1_tie_rel": 0.005,
             "alpha_atol": ALPHA_ATOL["fp16"]},
    "bf16": {"cosine_min": 0.999, "logit_err_rel_max": 0.05, "top1_agree_min": 0.95, "top1_tie_rel": 0.01,
             "alpha_atol": ALPHA_ATOL["bf16"]},
    "int8": {"cosine_min": 0.99, "logit_err_rel_max": 0.10, "top1_agree_min": 0.95, "top1_tie_rel": 0.02,
             "alpha_atol": ALPHA_ATOL["int8"]},
}
METRICS = ("max_abs", "max_rel", "logit_err_rel", "cosine_min", "top1_agree", "top1_agree_tie_aware", "top1_ties",
           "alpha_max_abs")
#: metrics whose worst value is the smallest
HIGHER_IS_BETTER = ("cosine_min", "top1_agree", "top1_agree_tie_aware")


def top1_ties(ref: np.ndarray, tie_rel: float, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: whether the reference's two highest logits lie within ``tie_rel`` of the logit range, and
    the runner-up class."""
    if ref.shape[1] < 2:
        return np.zeros(len(ref), bool), ref.argmax(1)
    order = np.argsort(ref, axis=1)
    top, second = order[:, -1], order[:, -2]
    rows = np.arange(len(ref))
    return (ref[rows, top] - ref[rows, second]) < tie_rel * spread, second


def tolerance_for(precision: str, device: str = "cpu", override: dict | None = None) -> dict:
    name = "fp32-gpu" if precision == "fp32" and str(device).startswith("cuda") else precision
    tol = dict(TOLERANCES[name])
    if override and precision in override:
        tol.update(override[precision])
    return {"name": name, **tol}


def compare(ref: np.ndarray, out: np.ndarray, tol: dict, logit_range: float | None = None,
            ref_alpha: np.ndarray | None = None, alpha: np.ndarray | None = None) -> dict:
    """Metrics of ``out`` against ``ref`` (both ``(n, classes)``) and the verdict under ``tol``; of ``alpha``
    against ``ref_alpha`` (both ``(n, k)``) where both are given.

    ``logit_range`` defaults to ``ref``'s own (max − min); pass the whole reference's when ``ref`` is a part."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    diff = np.abs(out - ref)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(norms > 0, (ref * out).sum(1) / np.maximum(norms, 1e-300), 1.0)
    if not np.isfinite(out).all():
        diff, cos = np.full_like(diff, np.inf), np.full_like(cos, -1.0)
    spread = float(ref.max() - ref.min()) if logit_range is None else float(logit_range)
    agree = ref.argmax(1) == out.argmax(1)
    ties, second = top1_ties(ref, tol.get("top1_tie_rel", 0.0), spread)
    swapped = ties & (out.argmax(1) == second)
    metrics = {
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / max(float(np.abs(ref).max()), 1e-12)),
        "logit_err_rel": float(diff.max() / max(spread, 1e-12)),
        "cosine_min": float(cos.min()),
        "top1_agree": float(agree.mean()),
        "top1_agree_tie_aware": float((agree | swapped).mean()),
        "top1_ties": int(ties.sum()),
        "n": int(len(ref)),
    }
    if ref_alpha is not None and alpha is not None:
        a = np.asarray(alpha, np.float64)
        metrics["alpha_max_abs"] = (float(np.abs(a - np.asarray(ref_alpha, np.float64)).max())
                                    if np.isfinite(a).all() else float("inf"))
    failures = []
    if "atol" in tol:
        excess = diff - (tol["atol"] + tol["rtol"] * np.abs(ref))
        if (excess > 0).any():
            failures.append(f"max_abs {metrics['max_abs']:.3g} exceeds atol {tol['atol']:g} + rtol {tol['rtol']:g}·|ref|")
    if "logit_err_rel_max" in tol and metrics["logit_err_rel"] > tol["logit_err_rel_max"]:
        failures.append(f"logit_err_rel {metrics['logit_err_rel']:.3g} > {tol['logit_err_rel_max']:g} "
                        f"(max_abs {metrics['max_abs']:.3g} of a {spread:.3g} logit range)")
    if "cosine_min" in tol and metrics["cosine_min"] < tol["cosine_min"]:
        failures.append(f"cosine_min {metrics['cosine_min']:.6f} < {tol['cosine_min']}")
    if "alpha_atol" in tol and metrics.get("alpha_max_abs", 0.0) > tol["alpha_atol"]:
        failures.append(f"alpha_max_abs {metrics['alpha_max_abs']:.3g} > {tol['alpha_atol']:g} (eq. 2's per-frame "
                        f"attention differs from eager's)")
    if "top1_agree_min" in tol and metrics["top1_agree_tie_aware"] < tol["top1_agree_min"]:
        n_swaps = int((swapped & ~agree).sum())
        excused = f" ({n_swaps} swap{'s' * (n_swaps > 1)} of tied classes counted as agreeing)" if n_swaps else ""
        failures.append(f"top1_agree {metrics['top1_agree_tie_aware']:.4f} < {tol['top1_agree_min']}{excused}")
    return {**metrics, "passed": not failures, "failures": failures}


def run_batches(infer, x: np.ndarray, batch: int):
    """Outputs of ``infer`` over ``x`` in full batches of ``batch`` (the last filled by wrapping around); where
    ``infer`` returns a tuple, a tuple of the concatenated outputs (None stays None)."""
    n = len(x)
    outs = []
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch) % n
        got = infer(np.ascontiguousarray(x[idx]))
        keep = min(batch, n - start)
        outs.append(tuple(None if o is None else np.asarray(o)[:keep] for o in got) if isinstance(got, tuple)
                    else np.asarray(got)[:keep])
    if isinstance(outs[0], tuple):
        return tuple(None if parts[0] is None else np.concatenate(parts) for parts in zip(*outs))
    return np.concatenate(outs)


def reference_outputs(model, x: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray | None]:
    """Eager FP32 PyTorch logits and self-attention α (eq. 2; None for a model without it) on the CPU."""
    import torch

    def run(b):
        logits, attention = model(torch.from_numpy(b), return_attention=True)
        alpha = attention.get("self")
        return logits.numpy(), None if alpha is None else alpha.numpy()

    with torch.no_grad():
        return run_batches(run, x, batch)


def reference_logits(model, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """Eager FP32 PyTorch logits on the CPU."""
    return reference_outputs(model, x, batch)[0]


def check_parity(engine, x: np.ndarray, ref: np.ndarray, max_batch: int, tol: dict,
                 labels: np.ndarray | None = None, min_batch: int = 1, ref_alpha: np.ndarray | None = None) -> dict:
    """Run ``engine`` over every clip of ``x`` at batch ``min_batch`` and at ``max_batch``; compare with ``ref``
    (and its α with ``ref_alpha`` where the engine has that output).

    The record: per batch size the metrics and verdict (``batches``), overall the worst figure of each
    (``passed`` only when every batch size passed), the tolerance, and the accuracy change where labels exist.
    """
    spread = float(np.max(ref) - np.min(ref))
    sizes = [min_batch] if min_batch == max_batch else [min_batch, max_batch]
    runs = {b: run_batches(engine.infer_all, x, b) for b in sizes}  # (logits, α or None) per batch size
    batches = [{"batch": b, **compare(ref, logits, tol, spread, ref_alpha, alpha)}
               for b, (logits, alpha) in runs.items()]
    worst = {m: (min if m in HIGHER_IS_BETTER else max)(r[m] for r in batches) for m in METRICS if m in batches[0]}
    failures = [f"batch {r['batch']}: {f}" for r in batches for f in r["failures"]]
    record = {**worst, "n": int(len(x)), "logit_range": spread, "passed": not failures, "failures": failures,
              "tolerance": tol, "batches": batches}
    if labels is not None and (labels >= 0).any():
        known = labels >= 0
        eager = float((ref[known].argmax(1) == labels[known]).mean())
        artifact = float((runs[max_batch][0][known].argmax(1) == labels[known]).mean())
        record["accuracy"] = {"eager": eager, "artifact": artifact, "change": artifact - eager, "n": int(known.sum())}
    return record
