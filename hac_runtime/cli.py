"""Console scripts of hac_runtime: argument parsing only; each command calls one library function."""
from __future__ import annotations

import click

from hac_runtime import spec
from hac_runtime.errors import click_main
from hac_runtime.faces.align import ALIGNERS
from hac_runtime.faces.detectors import DEFAULT_DETECTOR, DETECTORS
from hac_runtime.media import STREAM_TIMEOUT_S
from hac_runtime.pipeline.config import DEFAULTS, POLICIES, PipelineConfig

NEW_FACE_SCORE_HELP = ("A detection starts a new face track only with at least this score (weaker ones continue a face already followed; lower it for small or dark faces, at the cost of false faces) [default: the detector's own: hog 0.5, haar and cnn any].")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--detector", type=click.Choice(DETECTORS), default=DEFAULT_DETECTOR, show_default=True,
              help="Face detector.")
@click.option("--aligner", type=click.Choice(ALIGNERS), default="sequence", show_default=True,
              help="sequence: the paper's (to the clip's first frame); template: each frame to a canonical face.")
@click.option("--image-size", "--size", "size", type=click.IntRange(16, 4096), default=224, show_default=True,
              help="Aligned face side, pixels (hac-train's --image-size; --size is the older name).")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes [default: one per idle core, when the clips have frames enough to pay].")
@click.option("--detect-every", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Run the detector every N frames, track landmarks in between.")
@click.option("--new-face-score", type=float, default=None, help=NEW_FACE_SCORE_HELP)
@click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True,
              help="all: every face its own clip (OUT/<clip>.face0, .face1… when a source has several); "
                   "largest: one face per source.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare_cmd(inputs, out, detector, aligner, size, workers, detect_every, new_face_score, faces, quiet):
    """Faces from videos, frame folders, image lists (.txt) or images: detect, 68 landmarks, align (§4.2).

    Writes OUT/<clip>/NNNNN.png (NNNNN = source frame index) and OUT/faces.jsonl.
    Resumable: clips already done are skipped.
    """
    from hac_runtime.prepare import prepare

    summary = prepare(list(inputs), out, detector=detector, aligner=aligner, size=size, workers=workers,
                      progress=not quiet, detect_every=detect_every, faces=faces, new_face_score=new_face_score)
    click.echo(summary.render(warnings=quiet))  # not quiet: the warnings were shown as they came


prepare_main = click_main(prepare_cmd, "hac-prepare")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", "-m", required=True, type=click.Path(),
              help="Exported artifact (hac.onnx, *.engine, *.pt2) with its .json manifest, an export folder, or a "
                   "Triton server's model: grpc://HOST:PORT/MODEL (http://… also).")
@click.option("--engine", type=click.Choice(["auto", *spec.ENGINES]), default="auto", show_default=True,
              help="Engine; auto: time every engine (and artifact of a folder) that can run here, keep the fastest.")
@click.option("--precision", type=click.Choice(spec.PRECISIONS), default=None,
              help="Only runs of this precision (an export folder's artifacts; bf16: OpenVINO on the FP32 ONNX) "
                   "[default: any that passed parity].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None, help="JSON lines file [default: stdout].")
@click.option("--video-out", type=click.Path(dir_okay=False), default=None,
              help="Annotated video (.mp4/.avi); one per source when several.")
@click.option("--timeline", type=click.Path(dir_okay=False), default=None,
              help="Per-track emotion timeline (.png): each track's running decisions over time; one per source "
                   "when several.")
@click.option("--policy", type=click.Choice(POLICIES), default=None,
              help="track: one decision per face track (files); window: sliding window (live) [default: by source].")
@click.option("--window", type=click.FloatRange(0.1, 600), default=DEFAULTS.window, show_default=True,
              help="Window, seconds.")
@click.option("--stride", type=click.FloatRange(0.05, 600), default=DEFAULTS.stride, show_default=True,
              help="Stride, seconds.")
@click.option("--detect-every", type=click.IntRange(1, 1000), default=DEFAULTS.detect_every, show_default=True,
              help="Run the detector every N analysed frames, track landmarks in between.")
@click.option("--analyse-every", type=click.IntRange(1, 1000), default=DEFAULTS.analyse_every, show_default=True,
              help="Look at faces on every N-th frame only (the others are decoded, not analysed): about N times "
                   "less face work per source, for many cameras on a CPU.")
@click.option("--detector", type=click.Choice(DETECTORS), default=DEFAULT_DETECTOR, show_default=True)
@click.option("--new-face-score", type=float, default=None, help=NEW_FACE_SCORE_HELP)
@click.option("--max-batch", type=click.IntRange(1, 1024), default=DEFAULTS.max_batch, show_default=True,
              help="Clips per engine call.")
@click.option("--cuda-graph", is_flag=True, help="TensorRT and torch engines on a CUDA GPU: capture a CUDA graph per batch bucket at load "
                   "and replay it (a failed capture runs plainly, said on the engine line).")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=STREAM_TIMEOUT_S, show_default=True,
              help="Stream URLs: seconds to wait for the server to open the stream and for each read; "
                   "a Triton server: seconds per request.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (there are none when stderr is not a terminal).")
def run_cmd(sources, model, engine, precision, device, out, video_out, timeline, policy, window, stride, detect_every,
            analyse_every, detector, new_face_score, max_batch, cuda_graph, timeout, quiet):
    """Classify facial expressions per face track in videos, frame folders, image lists (.txt, one path per
    line), images, cameras (0, 1…) or URLs.

    Writes one JSON line per classified clip (CONTRACTS.md "Results line").
    A source that fails is reported on stderr and the others go on. Ctrl-C stops
    reading, classifies the faces already seen and exits 130; twice quits at once.
    """
    from hac_runtime.pipeline.run import run_sources

    config = PipelineConfig(detector=detector, detect_every=detect_every, new_face_score=new_face_score,
                            analyse_every=analyse_every, policy=policy,
                            window=window, stride=stride, max_batch=max_batch, timeout=timeout)
    summary = run_sources(list(sources), model, engine=engine, device=device, precision=precision, out=out,
                          video_out=video_out, timeline=timeline, config=config, cuda_graph=cuda_graph,
                          progress=not quiet)
    click.echo(f"hac-run: {summary.results} result(s) from {summary.sources_ok} source(s)"
               + (f", {summary.sources_failed} failed" if summary.sources_failed else ""), err=True)
    if summary.failure():
        from hac_runtime.errors import HacFailure

        raise HacFailure(summary.failure())


run_main = click_main(run_cmd, "hac-run")
