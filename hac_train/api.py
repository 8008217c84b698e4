"""The library behind ``hac-train``, ``hac-eval`` and ``hac-synth``: one call each.

Run folder (CONTRACTS.md): ``RUN/ckpt.pt`` (best validation accuracy), ``RUN/last.pt``,
``RUN/metrics.json``, ``RUN/plots/*.png``, plus ``RUN/run.json`` (the settings, for
``--resume``), ``RUN/predictions.json`` and ``RUN/skipped-clips.json``. With
``--folds N > 1`` each fold has the same files in ``RUN/fold-i/``; ``RUN/metrics.json``
holds the per-fold results, their mean ± std and the metrics of all folds'
validation predictions pooled (the paper's Fig. 7/8 "after five-fold
cross-validation"); ``RUN/ckpt.pt`` and ``RUN/last.pt`` are copies of the best fold's.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hac_runtime import devices
from hac_runtime.atomic import atomic_path, check_output_dir, write_json
from hac_runtime.errors import HacError, HacException
from hac_runtime.progress import console
from hac_runtime.spec import Preprocess
from hac_train import distributed, plots
from hac_train.checkpoint import load_checkpoint, read_checkpoint
from hac_train.config import DEFAULTS, TrainConfig
from hac_train.data import ClipDataset, load_index, load_unlabelled, prepare_faces
from hac_train.metrics import classification_metrics, roc, summarize_folds
from hac_train.model import HACConfig, HACNet
from hac_train.protocol import describe, make_splits, official_split
from hac_train.recipe import DATASET_PRESET, preset

METRICS_FORMAT = "hac-metrics/1"


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``--device`` → a torch device (``hac_runtime.devices``: one rule for every package)."""
    return torch.device(devices.resolve_device(device, torch.cuda.is_available(), "torch sees no CUDA GPU here",
                                               local_rank))


def _amp(amp: str, device: torch.device) -> bool:
    """auto: on for CUDA; on a CPU only when asked (bf16 autocast: 1.8× on AVX512-BF16, benchmarks/train.md)."""
    if amp not in ("auto", "on", "off"):
        raise HacError(f"--amp must be auto, on or off, got {amp!r}")
    return amp == "on" or (amp == "auto" and device.type == "cuda")


def write_report(out: Path, metrics: dict, probs, labels, keys, classes, title: str, history=None) -> None:
    """``metrics.json``, ``predictions.json`` and the plots of one set of predictions."""
    write_json(out / "metrics.json", metrics)
    write_json(out / "predictions.json", {"classes": list(classes), "clips": list(keys),
                                          "true": [classes[i] for i in labels],
                                          "probs": np.round(np.asarray(probs), 5).tolist()})
    pd = out / "plots"
    plots.confusion(metrics["confusion"], classes, pd / "confusion.png", title=f"{title}: confusion matrix")
    plots.confusion(metrics["confusion_normalized"], classes, pd / "confusion_normalized.png", normalized=True,
                    title=f"{title}: confusion matrix (normalised)")
    if len(labels):
        plots.roc_curves(roc(labels, probs, len(classes)), classes, pd / "roc.png", title=f"{title}: ROC")
    if history:
        plots.training_curves(history, pd / "training_curves.png", title)


def _skipped_report(out: Path, skipped) -> dict:
    write_json(out / "skipped-clips.json", {"count": len(skipped), "clips": [s.to_dict() for s in skipped]})
    return {"count": len(skipped), "report": "skipped-clips.json"}


def _check_classes(index, clips, skipped, out: Path) -> None:
    """Every class has a usable clip; else one line, with the skipped clips listed in ``out/skipped-clips.json``."""
    have = {c.sample.label for c in clips}
    for cls in index.classes:
        if cls not in have:
            lost = [s for s in skipped if s.label == cls]
            why = ""
            if lost:
                _skipped_report(out, skipped)  # the file the line names exists
                why = (f" (all {len(lost)} of its clips were skipped, e.g. {lost[0].key}: {lost[0].reason}; "
                       f"see {out / 'skipped-clips.json'})")
            raise HacError(f"{index.root}: class {cls!r} has no samples{why}")


def _prepare(index, cache, aligner, size, detector, workers, progress, dist):
    """Faces for every clip, on rank 0; the other ranks receive the list."""
    result = None
    if dist.main:
        try:
            result = prepare_faces(index, cache, aligner, size, detector, workers=workers, progress=progress)
        except HacException as e:  # a failure too: every rank must hear of it, or the others wait for ever
            result = e
    result = distributed.broadcast(result, dist)
    if isinstance(result, HacException):
        raise result
    return result


def _teach(index, clips, s: TrainConfig, out: Path, resume: bool, say, dist):
    """The teacher's labels (``hac_train.teacher.pseudo_label``), on rank 0; the other ranks receive them.
    A resumed run keeps the labels it started with (``RUN/pseudo-labels.json``): relabelling could move a
    clip across the confidence threshold and change the splits and classes under ``last.pt``."""
    from hac_train.teacher import apply_labels, pseudo_label

    saved = out / "pseudo-labels.json"
    result = None
    if dist.main:
        try:
            if resume and saved.is_file():
                report = json.loads(saved.read_text())
                result = (*apply_labels(index, clips, report), report)
                say(f"teacher labels of {saved} ({report['kept']} clips kept)")
            else:
                result = pseudo_label(index, clips, s.teacher_min_confidence, s.teacher_weights, say=say)
                write_json(saved, result[2])
                run = json.loads((out / "run.json").read_text())
                write_json(out / "run.json", {**run, "classes": result[0].classes})
        except HacException as e:  # every rank must hear of it, or the others wait for ever
            result = e
    result = distributed.broadcast(result, dist)
    if isinstance(result, HacException):
        raise result
    return result[0], result[1]


def _default_workers(device: torch.device) -> int:
    import os

    return min(8, (os.cpu_count() or 1)) if device.type == "cuda" else 0


def train(data, out, config: TrainConfig | None = None, device: str = "auto", workers: int | None = None,
          resume: bool = False, amp: str = "auto", channels_last: bool | None = None, explain: int = 0,
          stop_after: int | None = None, progress: bool = True, **settings) -> dict | None:
    """Train (and cross-validate) a HAC model on a dataset; returns the RUN-level metrics dict.

    ``config`` (``TrainConfig``, its defaults) with ``settings`` (any of its fields) on top; ``data`` is its
    ``data``. ``resume`` continues the run in ``out`` with its saved config (``epochs`` may extend it).
    ``teacher="fer"``: DATA is unlabelled footage; ``hac_train.teacher.pseudo_label`` gives each clip a label
    (``RUN/pseudo-labels.json``) and the model learns those."""
    out = Path(out)
    s = (config or DEFAULTS).replace(data=data, **settings)
    run_json = out / "run.json"
    if resume:
        if not run_json.is_file():
            raise HacError(f"{out}: no run to resume (run.json missing)")
        saved = TrainConfig.from_dict(json.loads(run_json.read_text())["settings"], str(run_json))
        s = saved.replace(epochs=s.epochs)  # --resume --epochs N extends (or shortens) the run
    elif run_json.exists() or (out / "last.pt").exists():
        raise HacError(f"{out}: already holds a training run; continue it with --resume or choose another --out")
    check_output_dir(out, "training run")
    s.check()

    dev = resolve_device(device, distributed.from_env().local_rank)
    dist = distributed.init(dev)
    try:
        index = load_unlabelled(s.data) if s.teacher else load_index(s.data, s.dataset, s.subset)
        rec = preset(s.recipe or DATASET_PRESET[index.layout]).override(
            lr=s.lr, epochs=s.epochs, batch_size=s.batch_size, dropout=s.dropout, repeats=s.repeats)
        empty = [c for c, n in index.counts().items() if n == 0]
        if empty:
            raise HacError(f"{index.root}: class {empty[0]!r} has no samples")
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(run_json, {"format": "hac-run/1", "settings": s.to_dict(), "layout": index.layout,
                                  "classes": index.classes, "recipe": rec.to_dict(), "started": time.strftime("%F %T")})
        preprocess = Preprocess(s.image_size, s.k, aligner=s.aligner)
        clips, skipped, cache_dir = _prepare(index, s.cache, s.aligner, s.image_size, s.detector,
                                             workers, progress, dist)
        say = console().print if (progress and dist.main) else (lambda *a, **k: None)
        if s.teacher:
            index, clips = _teach(index, clips, s, out, resume, say, dist)
        _check_classes(index, clips, skipped, out)
        labels = [index.classes.index(c.sample.label) for c in clips]
        if s.protocol == "official":
            splits = official_split([c.sample.split for c in clips])
        else:
            groups = [c.sample.subject for c in clips] if s.group_by == "subject" else None
            splits = make_splits(labels, groups, s.folds, s.seed, len(index.classes))
        config = HACConfig(backbone=s.backbone, num_classes=len(index.classes), k=s.k,
                           attention=s.attention, temporal=s.temporal, dropout=rec.dropout)
        use_cl = dev.type == "cuda" if channels_last is None else channels_last
        workers_dl = _default_workers(dev) if workers is None else workers
        say(f"{index.layout} data {index.root}: {len(clips)} clips, {len(skipped)} skipped, classes "
            f"{', '.join(f'{c} {n}' for c, n in index.counts().items())}; faces cached in {cache_dir}")
        say(f"recipe {rec.name}: lr {rec.lr}, {rec.epochs} epochs, batch {rec.batch_size}, {rec.schedule} schedule; "
            f"model {s.backbone} {s.image_size}px k={s.k} attention={s.attention} "
            f"temporal={s.temporal}; device {dev}{' ×' + str(dist.world) if dist.enabled else ''}")
        from hac_train.fit import FitOptions, fit, predict

        fold_results = []
        for split in splits:
            fold_dir = out if len(splits) == 1 else out / split.name
            say(describe(split, labels, [c.sample.subject for c in clips]))
            done = fold_dir / "metrics.json"
            if resume and done.is_file() and json.loads(done.read_text()).get("complete"):
                fold_results.append((split, fold_dir, json.loads(done.read_text()),
                                     json.loads((fold_dir / "predictions.json").read_text())))
                say(f"{split.name}: already complete")
                continue
            train_set = ClipDataset([clips[i] for i in split.train], index.classes, preprocess, train=True,
                                    augment=rec.augment, seed=s.seed, repeats=rec.repeats)
            val_set = ClipDataset([clips[i] for i in split.val], index.classes, preprocess, train=False)
            torch.manual_seed(s.seed)
            model = HACNet(config, pretrained=s.pretrained)
            facts = {"dataset": index.layout, "data": str(index.root), "split": split.name, "protocol": s.protocol,
                     "train_clips": len(train_set.clips), "val_clips": len(val_set), "pretrained": s.pretrained}
            if s.teacher:
                facts["labels"] = f"pseudo-labels of teacher {s.teacher} at confidence >= {s.teacher_min_confidence}"
            opts = FitOptions(fold_dir, rec, index.classes, preprocess, dev, s.seed, _amp(amp, dev), use_cl,
                              workers_dl, progress, resume, stop_after, facts, dist)
            result = fit(model, train_set, val_set, opts)
            if not result["finished"]:
                say(f"stopped after {result['epochs_run']} epoch(s) as asked; continue with --resume")
                return None
            best_model, _ = load_checkpoint(fold_dir / "ckpt.pt", dev)
            probs, y, loss = predict(best_model, val_set, max(1, rec.batch_size // dist.world), dev, opts.amp,
                                     workers_dl, dist)
            if dist.main:
                m = {"format": METRICS_FORMAT, "complete": True, "split": split.name, "best_epoch": result["best_epoch"],
                     "classes": index.classes, **classification_metrics(y, probs, index.classes, loss),
                     "skipped": _skipped_report(fold_dir, skipped), "history": result["history"],
                     "train_clips": len(train_set.clips), "samples_per_epoch": len(train_set), "val_clips": len(val_set)}
                write_report(fold_dir, m, probs, y, [c.sample.key for c in val_set.clips], index.classes,
                             f"{split.name}" if len(splits) > 1 else out.name, result["history"])
                preds = json.loads((fold_dir / "predictions.json").read_text())
                fold_results.append((split, fold_dir, m, preds))
            distributed.barrier(dist)

        summary = None
        if dist.main:
            summary = _summarize(out, fold_results, index.classes, skipped, s, rec)
            if explain:
                ex_model, _ = load_checkpoint(out / "ckpt.pt")
                best_split = max(fold_results, key=lambda f: f[2]["accuracy"])[0]
                ds = ClipDataset([clips[i] for i in best_split.val], index.classes, preprocess)
                from hac_train.explain import explain_dataset

                explain_dataset(ex_model, ds, out / "explain", explain, index.classes)
        distributed.barrier(dist)
        return summary
    except KeyboardInterrupt:
        if dist.main:
            console().print(f"interrupted: {out} keeps the last finished epoch; continue with "
                            f"hac-train {s.data} --out {out} --resume")
        raise
    finally:
        distributed.shutdown()


def describe_run(out, metrics: dict) -> str:
    """The closing lines of ``hac-train``: the result, the best epoch or fold, and where everything is."""
    out = Path(out)
    if metrics.get("summary"):  # k folds
        acc, f1 = metrics["summary"]["accuracy"], metrics["summary"]["macro_f1"]
        head = (f"{metrics['protocol']}: accuracy {acc['mean']:.3f} ± {acc['std']:.3f}, macro F1 "
                f"{f1['mean']:.3f} ± {f1['std']:.3f}; best {metrics['best_fold']}")
    else:
        head = (f"{metrics.get('split', 'split')}: accuracy {metrics['accuracy']:.3f}, macro F1 "
                f"{metrics['macro_f1']:.3f} on {metrics.get('val_clips', '?')} validation clips; best epoch "
                f"{metrics.get('best_epoch')}")
    skipped = (metrics.get("skipped") or {}).get("count")
    tail = f"; {skipped} clip(s) skipped, see {out / 'skipped-clips.json'}" if skipped else ""
    return (f"{head}{tail}\ncheckpoint {out / 'ckpt.pt'} (export: hac-export {out / 'ckpt.pt'}); "
            f"metrics {out / 'metrics.json'}; plots {out / 'plots'}")


def _summarize(out: Path, fold_results, classes, skipped, settings, rec) -> dict:
    """RUN/metrics.json: one split as is; several folds → per-fold, mean ± std, pooled predictions, best fold's ckpt."""
    if len(fold_results) == 1:
        return json.loads((out / "metrics.json").read_text())
    folds = [m for _, _, m, _ in fold_results]
    keys = sum((p["clips"] for *_, p in fold_results), [])
    y = np.array([classes.index(t) for *_, p in fold_results for t in p["true"]])
    probs = np.array([row for *_, p in fold_results for row in p["probs"]])
    best = max(range(len(folds)), key=lambda i: folds[i]["accuracy"])
    best_dir = fold_results[best][1]
    for name in ("ckpt.pt", "last.pt"):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(best_dir / name, tmp)
    pooled = classification_metrics(y, probs, classes)
    m = {"format": METRICS_FORMAT, "complete": True, "protocol": f"{len(folds)}-fold cross-validation",
         "classes": classes, "summary": summarize_folds(folds), "best_fold": fold_results[best][0].name,
         "folds": [{"split": f["split"], "accuracy": f["accuracy"], "macro_f1": f["macro_f1"],
                    "auc_macro": f["auc"]["macro"], "best_epoch": f["best_epoch"], "val_clips": f["val_clips"]}
                   for f in folds],
         "pooled": pooled, "accuracy": folds and float(np.mean([f["accuracy"] for f in folds])),
         "skipped": _skipped_report(out, skipped), "recipe": rec.to_dict()}
    write_report(out, m | {"confusion": pooled["confusion"], "confusion_normalized": pooled["confusion_normalized"]},
                 probs, y, keys, classes, f"{out.name} ({len(folds)} folds pooled)")
    curves_dir = out / "plots"
    for _, fdir, fm, _ in fold_results:
        if fm.get("history"):
            plots.training_curves(fm["history"], curves_dir / f"training_curves_{fdir.name}.png", fdir.name)
    return json.loads((out / "metrics.json").read_text())


def evaluate(checkpoint, data, out, dataset: str = "auto", subset: str | None = None, cache=None,
             detector: str | None = None, device: str = "auto", batch_size: int = 16, workers: int | None = None,
             split: str | None = None, explain: int = 0, progress: bool = True) -> dict:
    """Evaluate a checkpoint on every clip of a dataset (or one split of it): metrics.json, predictions, plots."""
    from hac_train.fit import predict

    read_checkpoint(checkpoint)  # one-line errors for a wrong file before any face work
    check_output_dir(out, "evaluation")  # and an unwritable output before the work, not after it
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint, dev)
    classes, preprocess = list(ckpt["classes"]), ckpt["preprocess"]
    index = load_index(data, dataset, subset)
    unknown = sorted({s.label for s in index.samples} - set(classes))
    if unknown:
        raise HacError(f"{index.root}: labels {', '.join(unknown)} are not classes of {checkpoint} "
                       f"({', '.join(classes)})")
    if split:
        index.samples = [s for s in index.samples if (s.split or "").lower() == split.lower()]
        if not index.samples:
            raise HacError(f"{index.root}: no clips in split {split!r}")
    clips, skipped, _ = prepare_faces(index, cache, preprocess.aligner, preprocess.image_size,
                                      detector, workers=workers, progress=progress)
    if not clips:
        raise HacError(f"{index.root}: no clip with a face to evaluate")
    ds = ClipDataset(clips, classes, preprocess)
    probs, y, loss = predict(model, ds, batch_size, dev, dev.type == "cuda", _default_workers(dev) if workers is None
                             else workers, progress=progress)
    out = Path(out)
    m = {"format": METRICS_FORMAT, "complete": True, "checkpoint": str(checkpoint), "data": str(index.root),
         "dataset": index.layout, "classes": classes, **classification_metrics(y, probs, classes, loss),
         "skipped": _skipped_report(out, skipped)}
    write_report(out, m, probs, y, [c.sample.key for c in clips], classes, Path(str(checkpoint)).name)
    if explain:
        from hac_train.explain import explain_dataset

        explain_dataset(model, ds, out / "explain", explain, classes)
    return m


def synth(out, clips: int = 140, seed: int = 0, frames: int = 12, size: int = 200, fmt: str = "mp4",
          progress: bool = True) -> dict:
    """``hac-synth``: see ``hac_train.synth``."""
    from hac_train.synth import synthesize

    return synthesize(out, clips=clips, seed=seed, frames=frames, size=size, fmt=fmt, progress=progress)
