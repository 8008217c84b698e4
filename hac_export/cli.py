"""``hac-export``: parse the options, call ``hac_export.api.export``."""
from __future__ import annotations

from pathlib import Path

import click

from hac_runtime.spec import FORMATS, artifact_engines
from hac_export.int8 import CALIB_METHODS
from hac_export.triton import BACKENDS as TRITON_BACKENDS
from hac_export.triton import KINDS as TRITON_KINDS
from hac_runtime.errors import click_main


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--format", "formats", default="onnx", show_default=True,
              help=f"Comma-separated formats: {', '.join(FORMATS)}.")
@click.option("--fp16", is_flag=True, help="Also export mixed FP16 (trunk FP16; attention, GRU, FC in FP32).")
@click.option("--bf16", is_flag=True, help="Also export mixed BF16 (--format aoti: trunk BF16; the rest FP32).")
@click.option("--int8", is_flag=True, help="Also export static QDQ INT8, calibrated on --calib.")
@click.option("--calib", type=click.Path(path_type=Path),
              help="Aligned face clips (hac-prepare output): INT8 calibration and parity inputs.")
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), help="INT8 calibration method [default: minmax].")
@click.option("--batch", default="1:8:16", show_default=True,
              help="MIN:OPT:MAX batch: TensorRT profile, torch.export range, largest parity batch.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [default: the checkpoint's folder].")
@click.option("--workspace", type=float, help="TensorRT workspace limit in GiB [default: 4].")
@click.option("--triton-backend", type=click.Choice(TRITON_BACKENDS),
              help="--format triton: serve the ONNX files with Triton's onnxruntime platform, or with its Python "
                   "backend running ONNX Runtime on the CPU [default: onnxruntime].")
@click.option("--triton-kind", type=click.Choice(TRITON_KINDS),
              help="--format triton: instance kind of the ONNX models [default: gpu; python: cpu].")
def export_command(checkpoint, formats, fp16, bf16, int8, calib, calib_method, batch, out, workspace, triton_backend,
                   triton_kind):
    """Export CHECKPOINT to checked artifacts, each with a manifest, and OUT/parity.json."""
    from hac_export.api import export
    from hac_runtime.errors import HacFailure

    report = export(checkpoint, formats=formats, fp16=fp16, bf16=bf16, int8=int8, calib=calib, batch=batch, out=out,
                    calib_method=calib_method, workspace_gb=workspace, triton_backend=triton_backend,
                    triton_kind=triton_kind)
    if report.failed:
        raise HacFailure(report.failure())


export_main = click_main(export_command, "hac-export")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option("--engine", "engines", default="all", show_default=True,
              help=f"Comma-separated: {', '.join(artifact_engines())}, or all.")
@click.option("--full", is_flag=True, help="Every run of the format table, not the default selection.")
@click.option("--batch", "batches", default="1,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--calib", type=click.Path(path_type=Path),
              help="Aligned clips (hac-prepare output) for INT8 calibration and parity [default: hac-synth clips].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the results as JSON here.")
@click.option("--plot", type=click.Path(path_type=Path), help="Write a PNG of latency against batch here.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("hac-bench"), show_default=True,
              help="Work folder: exported artifacts, default model and clips (reused by later runs).")
@click.option("--seconds", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="Minimum timed seconds per batch size (all engines interleaved).")
@click.option("--warmup", type=click.FloatRange(0.0, 600), default=2.0, show_default=True,
              help="Warm-up seconds per engine and batch size.")
def bench_command(checkpoint, engines, full, batches, calib, json_path, plot, out, seconds, warmup):
    """Parity and latency of every engine × precision × batch against eager PyTorch, in one table.

    Without CHECKPOINT: the built-in default (the paper's ResNet50 configuration, 224 px, k=5, seeded, untrained).
    """
    from hac_export.bench.run import run_bench

    run_bench(checkpoint, engines=engines, batches=batches, calib=calib, json_path=json_path, plot=plot, out=out,
              seconds=seconds, warmup=warmup, full=full)


bench_main = click_main(bench_command, "hac-bench")
