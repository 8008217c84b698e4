"""The training loop (§4.3): epochs with progress bars, validation, ``last.pt`` every epoch, ``ckpt.pt`` on the
best validation accuracy, exact resume, DDP, AMP and channels-last on CUDA.

Exact resume: ``last.pt`` holds the weights, the optimiser, the scheduler, the
AMP scaler, the torch RNG state, the epoch and the history; the data order and
the per-clip sampling/augmentation derive from ``(seed, epoch)`` only. Training
N epochs in one go or in several resumed pieces gives the same weights.
An interruption (Ctrl-C) loses at most the epoch in progress.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from hac_runtime.errors import HacError
from hac_runtime.progress import console, progress_bar
from hac_runtime.spec import Preprocess
from hac_train import distributed
from hac_train.checkpoint import read_checkpoint, save_checkpoint
from hac_train.distributed import DistInfo
from hac_train.metrics import classification_metrics
from hac_train.recipe import Recipe, make_optimizer, make_scheduler


@dataclass
class FitOptions:
    out: Path
    recipe: Recipe
    classes: list[str]
    preprocess: Preprocess
    device: torch.device
    seed: int = 0
    amp: bool = False            # autocast (CUDA: bf16 where supported, else fp16 + GradScaler; CPU: bf16)
    channels_last: bool = False
    workers: int = 0
    progress: bool = True
    resume: bool = False
    stop_after: int | None = None  # train at most this many epochs in this call (the run stays resumable)
    train_facts: dict = field(default_factory=dict)
    dist: DistInfo = field(default_factory=DistInfo)


def amp_dtype(device: torch.device) -> torch.dtype:
    # native bf16 only: with emulation (the default) a T4/V100 would take slow emulated bf16, not FP16 + GradScaler
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


def _loader(dataset, batch_size, sampler, workers, device) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=False, drop_last=False)


@torch.no_grad()
def predict(model, dataset, batch_size: int, device: torch.device, amp: bool = False, workers: int = 0,
            dist: DistInfo = DistInfo(), progress: bool = False, label: str = "evaluating"):
    """Softmax probabilities ``(n, classes)`` in dataset order, the labels and the mean cross-entropy.
    Under DDP each rank takes a shard and the results are gathered on every rank."""
    model.eval()
    sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=False) \
        if dist.enabled else None
    loader = _loader(dataset, batch_size, sampler, workers, device)
    idx_all, prob_all = [], []
    with progress_bar(label, len(loader), enabled=progress and dist.main) as bar:
        for x, y, idx in loader:
            with autocast(device, amp):
                logits = model(x.to(device, non_blocking=True))
            prob_all.append(torch.softmax(logits.float(), 1).cpu().numpy())
            idx_all.append(idx.numpy())
            bar.advance()
    idx = np.concatenate(idx_all) if idx_all else np.zeros(0, int)
    probs = np.concatenate(prob_all) if prob_all else np.zeros((0, len(dataset.classes)))
    parts = distributed.gather((idx, probs), dist)
    out = np.zeros((len(dataset), len(dataset.classes)))
    for i, p in parts:
        out[i] = p  # DistributedSampler pads with repeats: same index, same value
    labels = np.asarray(dataset.labels, int)
    loss = float(-np.log(np.clip(out[np.arange(len(labels)), labels], 1e-12, None)).mean()) if len(labels) else 0.0
    return out, labels, loss


def _rng_state(device: torch.device) -> dict:
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st: dict, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


def fit(model: torch.nn.Module, train_set, val_set, opts: FitOptions) -> dict:
    """Train ``model`` on ``train_set``, validating on ``val_set`` each epoch; returns
    ``{"history", "best_epoch", "best": validation metrics of ckpt.pt, "epochs_run"}``."""
    r, dist, device = opts.recipe, opts.dist, opts.device
    out = Path(opts.out)
    model.to(device)
    if opts.channels_last:
        model.to(memory_format=torch.channels_last)
    per_rank = max(1, r.batch_size // dist.world)
    sampler = DistributedSampler(train_set, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=opts.seed)
    loader = _loader(train_set, per_rank, sampler, opts.workers, device)
    optimizer = make_optimizer(model, r)
    scheduler = make_scheduler(optimizer, r, len(loader))
    fp16 = opts.amp and device.type == "cuda" and amp_dtype(device) == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.enabled else model

    start, history, best = 0, [], {"epoch": None, "val_acc": -1.0, "val_loss": float("inf"), "metrics": None}
    last = out / "last.pt"
    if opts.resume and last.exists():
        ckpt = read_checkpoint(last)
        state = ckpt.get("resume")
        if not isinstance(state, dict):
            raise HacError(f"{last}: holds no training state to resume from")
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], device)
        start, history, best = state["epoch"], list(state["history"]), dict(state["best"])
        if opts.progress and dist.main:
            console().print(f"resuming {out} at epoch {start + 1}/{r.epochs}")
    elif opts.resume and dist.main:  # a run stopped before its first epoch ended: say that it starts over
        console().print(f"{out}: no last.pt (no epoch had finished): starting at epoch 1")
    if dist.main:  # temporary files of a killed write (atomic_path) are never anything to keep
        for leftover in out.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)

    end = r.epochs if opts.stop_after is None else min(r.epochs, start + opts.stop_after)
    for epoch in range(start, end):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        net.train()
        t0 = time.perf_counter()
        loss_sum = correct = seen = 0.0
        with progress_bar(f"{out.name or 'run'} epoch {epoch + 1}/{r.epochs}", len(loader),
                          enabled=opts.progress and dist.main) as bar:
            for x, y, _ in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with autocast(device, opts.amp):
                    logits = net(x)
                    loss = criterion(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                n = len(y)
                loss_sum += float(loss.detach()) * n
                correct += float((logits.detach().argmax(1) == y).sum())
                seen += n
                bar.advance(info=f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f}")
        train_time = time.perf_counter() - t0
        loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], dist)
        probs, labels, val_loss = predict(model, val_set, per_rank, device, opts.amp, opts.workers, dist)
        val_acc = float((probs.argmax(1) == labels).mean()) if len(labels) else 0.0
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1), "val_loss": val_loss, "val_acc": val_acc,
               "train_samples": int(seen), "train_clips_per_s": seen / max(train_time, 1e-9),
               "seconds": time.perf_counter() - t0}
        history.append(row)
        improved = val_acc > best["val_acc"] or (val_acc == best["val_acc"] and val_loss < best["val_loss"])
        if improved:
            metrics = classification_metrics(labels, probs, opts.classes, loss=val_loss)
            best = {"epoch": epoch + 1, "val_acc": val_acc, "val_loss": val_loss, "metrics": metrics}
        if dist.main:
            facts = {**opts.train_facts, "recipe": r.to_dict(), "epoch": epoch + 1, "seed": opts.seed,
                     "world_size": dist.world, "device": device.type, "amp": opts.amp}
            if improved:
                save_checkpoint(out / "ckpt.pt", model, opts.classes, opts.preprocess, train=facts,
                                metrics={"split": "validation", **best["metrics"]})
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "rng": _rng_state(device), "epoch": epoch + 1,
                     "history": history, "best": best}
            save_checkpoint(last, model, opts.classes, opts.preprocess, train=facts,
                            metrics={"split": "validation", "accuracy": val_acc, "loss": val_loss},
                            extra={"resume": state})
            if opts.progress:
                console().print(f"epoch {epoch + 1}/{r.epochs}: train loss {row['train_loss']:.3f} "
                                f"acc {row['train_acc']:.3f} | val loss {val_loss:.3f} acc {val_acc:.3f}"
                                f"{' (best)' if improved else ''} | {row['train_clips_per_s']:.1f} clips/s")
        distributed.barrier(dist)
    return {"history": history, "best_epoch": best["epoch"], "best": best["metrics"], "epochs_run": end - start,
            "finished": end == r.epochs}
