"""``export(...)``: a checkpoint → checked artifacts, each with its manifest, and ``parity.json``.

The one library function behind ``hac-export``. It refuses bad options before
any work (``registry.plan_export``), loads the checkpoint, then for every
artifact: export under a temporary name → structural checks → parity with eager
FP32 PyTorch through the runtime engine that will run it → publish (see
``manifest.publish``). An artifact that fails parity, or cannot be made, fails
alone: the others are written, ``parity.json`` records them, and the report —
returned, never carried on an exception — says what failed (``hac-export``
then exits 1).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from hac_export import fp16 as fp16_mod
from hac_export import int8 as int8_mod
from hac_export import onnx as onnx_mod
from hac_export import outputs as outputs_mod
from hac_export import parity as parity_mod
from hac_export.manifest import build_manifest, describe_file, publish, staged
from hac_export.parity_inputs import parity_clips
from hac_export.registry import DEFAULT_BATCH, FORMATS, artifact_name, plan_export
from hac_runtime import __version__, spec
from hac_runtime.atomic import check_output_dir, write_json
from hac_runtime.engines import load_engine
from hac_runtime.engines.base import manifest_path, parity_figures
from hac_runtime.engines.select import PARITY_FILE, folder_manifests, installed
from hac_runtime.errors import HacError, HacException, HacFailure, one_line
from hac_runtime.progress import progress_bar
from hac_train.checkpoint import file_sha256, load_checkpoint

REFERENCE = "eager FP32 PyTorch on the CPU"


@dataclass
class ExportReport:
    out: Path
    artifacts: list = field(default_factory=list)  #: one dict per artifact: name, path, format, precision, status, parity
    parity_file: Path | None = None
    replaced: list = field(default_factory=list)  #: artifacts of another checkpoint moved into replaced-<sha>/

    @property
    def failed(self) -> list:
        """Artifacts that failed parity (``status`` failed) or could not be made (``error``)."""
        return [a for a in self.artifacts if a["status"] != "passed"]

    def failure(self) -> str | None:
        """One line naming every failed artifact with its figures or error (None when all passed)."""
        if not self.failed:
            return None
        parts = [f"{a['name']} ({parity_figures(a['parity'])}: {a['parity']['failures'][0]})" if a["parity"]
                 else f"{a['name']} (not made: {a['error']})" for a in self.failed]
        where = f"; marked failed, see {self.parity_file}" if self.parity_file else ""
        return f"{len(self.failed)} of {len(self.artifacts)} artifacts failed: {'; '.join(parts)}{where}"

    def path(self, fmt: str, precision: str = "fp32") -> Path:
        """The artifact of ``fmt`` in ``precision`` (a package such as ``triton``: its folder)."""
        return next(a["path"] for a in self.artifacts if a["format"] == fmt
                    and (a["precision"] == precision or (fmt in FORMATS and FORMATS[fmt].packs)))


class _Steps:
    """A rich progress display on stderr; when quiet, nothing, or with ``lines`` one plain line per artifact
    started, with its number, the time so far and an ETA from the artifacts already done (``hac-bench``)."""

    def __init__(self, verbose: bool, total: int, lines=None):
        self.lines, self.total, self.done, self.started = lines, total, 0, time.perf_counter()
        self._bar = progress_bar("export", total, enabled=verbose, transient=True)

    def __enter__(self):
        self.bar = self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def say(self, text: str):
        if self.bar.shown:
            self.bar.describe(text)
        elif self.lines is not None and text.endswith(": exporting"):
            spent = time.perf_counter() - self.started
            eta = f", ETA {spent / self.done * (self.total - self.done):.0f} s" if self.done else ""
            self.lines(f"{text} ({self.done + 1}/{self.total}; {spent:.0f} s so far{eta})")

    def advance(self):
        self.done += 1
        self.bar.advance()

    def subtask(self, text: str, total: int):
        """A callable that advances a second bar (e.g. calibration clips)."""
        return self.bar.subtask(text, total).advance if self.bar.shown else None

    def log(self, text: str):
        self.bar.print(text, markup=True)


def export(checkpoint, formats="onnx", fp16: bool = False, int8: bool = False, calib=None, batch=DEFAULT_BATCH,
           out=None, calib_method: str | None = None, workspace_gb: float | None = None,
           activations: str | None = None, tolerances: dict | None = None, verbose: bool = True,
           include_fp32: bool = False, triton_backend: str | None = None, triton_kind: str | None = None,
           bf16: bool = False, only=None, lines=None) -> ExportReport:
    """Export ``checkpoint`` (hac-ckpt/1) as ``formats`` into ``out`` (default: the checkpoint's folder).

    ``batch`` is ``MIN:OPT:MAX`` (TensorRT's profile, torch.export's range, parity's largest batch).
    ``calib`` (a hac-prepare folder) calibrates INT8 and, when given, is also the parity input;
    otherwise parity runs on hac-synth clips (``parity_inputs``), never on random noise.
    ``activations`` (``u8``/``s8``) picks the INT8 activation type (default: ``s8`` when TensorRT builds from it, else ``u8``).
    ``tolerances`` overrides parity tolerances per precision. ``--format triton`` packs every ONNX file and
    engine made here that passed into ``out/triton/`` (``hac_export.triton``: ``triton_backend``
    onnxruntime or python, instances of ``triton_kind`` gpu or cpu; defaults onnxruntime, gpu). Returns the report, whatever failed: an
    artifact that fails parity or cannot be made fails alone (``report.failed``, ``report.failure()``);
    the others are written and recorded. ``only`` keeps those (format, precision) pairs (``plan_export``);
    ``lines`` (with ``verbose=False``) receives a progress line per artifact, with an ETA.
    """
    plan = plan_export(formats, fp16, int8, calib, batch, calib_method, workspace_gb, include_fp32, bf16, only)
    if plan.packages:
        from hac_export import triton as triton_mod

        triton_backend, triton_kind = triton_mod.check_options(triton_backend, triton_kind)
    elif triton_backend or triton_kind:
        raise HacError(f"--triton-{'backend' if triton_backend else 'kind'} applies only to --format triton")
    if any(FORMATS[f].export_needs_gpu for f in plan.formats):
        from hac_runtime.engines.trt.loader import require_tensorrt

        require_tensorrt("--format trt")
    checkpoint = Path(checkpoint)
    model, ckpt = load_checkpoint(checkpoint)
    source_sha = file_sha256(checkpoint)
    out = check_output_dir(Path(out) if out is not None else checkpoint.parent, "exports")
    for leftover in out.glob(".partial-*"):  # what a killed export left (staged artifacts are never published)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    lo, opt, hi = plan.batch
    pre, classes = ckpt["preprocess"], list(ckpt["classes"])  # k agrees with the model: load_checkpoint checked
    k, size = pre.k, pre.image_size
    if activations is None:
        activations = "s8" if "int8" in plan.precisions.get("trt", ()) else "u8"

    # Calibration data without faces is refused before any work.
    n_clips = min(len(int8_mod.find_clips(calib)), int8_mod.MAX_CALIB_CLIPS) if calib is not None else 0

    report = ExportReport(out=out)
    records = {}
    with _Steps(verbose, len(plan.artifacts()), lines) as steps:
        clips, inputs = parity_clips(calib, pre, classes, log=steps.log,
                                     progress=steps.subtask(f"reading clips from {calib}", n_clips) if calib else None)
        x, labels = clips.x, clips.labels
        ref, ref_alpha = parity_mod.reference_outputs(model, x)
        inputs = {"description": inputs, "clips": [str(f.relative_to(clips.root)) for f in clips.folders]}

        job = _Job(model=model, k=k, size=size, batch=plan.batch, clips=clips, calib_method=calib_method,
                   activations=activations, workspace_gb=workspace_gb)
        gpu = None
        try:
            for fmt, precision in plan.artifacts():
                if fmt == "trt" and gpu is None:
                    from hac_runtime.engines.trt.loader import gpu_facts

                    gpu = gpu_facts(0)["gpu"]
                name = artifact_name(fmt, precision, hi, gpu)
                final = out / name
                steps.say(f"{name}: exporting")
                # ONNX takes any batch; torch.export was given [1, MAX]; TensorRT's profile is [MIN, MAX].
                batch_facts = {"min": lo if fmt == "trt" else 1, "opt": opt, "max": None if fmt == "onnx" else hi}
                manifest = build_manifest(fmt, precision, ckpt, checkpoint, source_sha, onnx_mod.INPUT_NAME,
                                          onnx_mod.OUTPUT_NAME, batch_facts, builder={},
                                          attention_name=outputs_mod.ALPHA if outputs_mod.has_alpha(model) else None)
                started = time.perf_counter()
                try:
                    with staged(final) as tmp:
                        device = _write_artifact(job, fmt, precision, tmp, name, manifest, steps)
                        describe_file(manifest, tmp, name)
                        steps.say(f"{name}: checking parity")
                        tol = parity_mod.tolerance_for(precision, device, tolerances)
                        record = _parity(tmp, fmt, device, manifest, x, ref, labels, tol, hi, tolerances, ref_alpha)
                        record["inputs"] = inputs
                        manifest["parity"] = record
                        manifest["status"] = "passed" if record["passed"] else "failed"
                        target = publish(tmp, final, manifest)
                except Exception as e:  # noqa: BLE001 - one artifact's failure (a build, an exporter) fails it alone
                    why = (f"needs {artifact_name(*e.args[0], hi, gpu)}, which was not made" if isinstance(e, KeyError)
                           and isinstance(e.args[0], tuple) else f"{type(e).__name__}: {one_line(e)}"
                           if not isinstance(e, HacException) else str(e))
                    report.artifacts.append({"name": name, "path": None, "format": fmt, "precision": precision,
                                             "status": "error", "error": why, "parity": None,
                                             "seconds": round(time.perf_counter() - started, 2)})
                    steps.log(f"{name}: [red]not made[/] ({escape(why)})")
                    steps.advance()
                    continue
                job.made[(fmt, precision)] = target
                records[target.name] = {"format": fmt, "precision": precision, "status": manifest["status"], **record}
                report.artifacts.append({"name": target.name, "path": target, "format": fmt, "precision": precision,
                                         "status": manifest["status"], "parity": record,
                                         "seconds": round(time.perf_counter() - started, 2)})
                failures = escape("; ".join(record["failures"]))
                mark = "[green]passed[/]" if record["passed"] else f"[red]FAILED[/] ({failures})"
                steps.log(f"{target.name}: parity {mark}  {parity_figures(record)}  logit_err_rel "
                          f"{record['logit_err_rel']:.2g}")
                steps.advance()
        finally:  # whatever was published is recorded, even when a later artifact crashes
            if records:
                report.parity_file = _write_parity(out, records, checkpoint, source_sha, inputs)
            if any(r["status"] == "passed" for r in records.values()):  # the folder has a usable model of its own
                report.replaced = retire_other_checkpoints(out, source_sha)
                if report.replaced:
                    steps.log(f"{len(report.replaced)} artifact(s) of another checkpoint moved out of the way into "
                              f"{', '.join(sorted({p.parent.name + '/' for p in report.replaced}))}: "
                              f"{', '.join(p.name for p in report.replaced)}")
        for fmt in plan.packages:
            report.artifacts.append(_package(fmt, job, out, steps, triton_backend, triton_kind))

    if verbose:
        _summary(report)
    return report


def _package(fmt: str, job: "_Job", out: Path, steps, backend: str, kind: str) -> dict:
    """Pack the artifacts this export made that passed (``FORMATS[fmt].packs``) into ``out``: a report row."""
    from hac_export import triton as triton_mod
    from hac_runtime.engines import read_manifest

    started = time.perf_counter()
    packed = [(path, m) for (f, _), path in job.made.items()
              if f in FORMATS[fmt].packs and (m := read_manifest(path))["status"] == "passed"]
    row = {"name": f"{triton_mod.REPOSITORY}/", "format": fmt, "status": "error", "parity": None, "path": None,
           "precision": ",".join(dict.fromkeys(m["precision"] for _, m in packed)) or "-"}
    steps.say(f"{row['name']}: packing {len(packed)} artifacts")
    try:
        row["path"], row["models"] = triton_mod.write_repository(out, packed, backend, kind, job.batch[2])
        row["status"] = "passed"
        steps.log(f"{row['name']}: {len(row['models'])} models ({', '.join(row['models'])}); "
                  f"serve with tritonserver --model-repository {row['path']}")
    except (HacException, OSError) as e:
        row["error"] = str(e) if isinstance(e, HacException) else f"{type(e).__name__}: {one_line(e)}"
        steps.log(f"{row['name']}: [red]not made[/] ({escape(row['error'])})")
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _parity(path: Path, fmt: str, device: str, manifest: dict, x, ref, labels, tol: dict, max_batch: int,
            tolerances: dict | None = None, ref_alpha=None) -> dict:
    """Parity of the staged artifact, run by the runtime engine that will run it in production; then of every
    other run ``spec.RUNS`` lists for it whose engine is installed here (``runs``: OpenVINO fp32/bf16/int8)."""
    with load_engine(path, spec.native_engine(fmt), device, manifest=manifest, require_passed=False) as engine:
        record = parity_mod.check_parity(engine, x, ref, max_batch, tol, labels, manifest["input"]["batch"]["min"],
                                         ref_alpha)
        record.update(engine=engine.kind, device=engine.device, providers=engine.providers)
    if not record["passed"]:
        return record
    runs = {}
    for run in spec.runs_for(fmt, manifest["precision"]):
        if run.native or not installed(run.engine):
            continue
        key = run.key
        try:
            with load_engine(path, run.engine, "cpu", manifest=manifest, require_passed=False,
                             precision=run.precision) as engine:
                runs[key] = parity_mod.check_parity(engine, x, ref, max_batch,
                                                    parity_mod.tolerance_for(run.precision, "cpu", tolerances),
                                                    labels, manifest["input"]["batch"]["min"], ref_alpha)
                runs[key].update(engine=engine.kind, device=engine.device, providers=engine.providers)
        except HacException as e:
            # the staged file's name (.partial-XXXX-hac.onnx) means nothing to a reader: name the published one
            runs[key] = {"passed": False, "error": str(e).replace(path.name, manifest["artifact"].get("file", path.name))}
    if runs:
        record["runs"] = runs
    return record


@dataclass
class _Job:
    """What the per-artifact writers share."""

    model: object
    k: int
    size: int
    batch: tuple
    clips: object
    calib_method: str | None
    activations: str
    workspace_gb: float | None
    made: dict = field(default_factory=dict)  #: (format, precision) → published path
    programs: dict = field(default_factory=dict)  #: precision → torch.export program (FP32: shared by pt2 and aoti)


def _write_onnx(job: _Job, precision: str, tmp: Path, name: str, manifest: dict, steps) -> str:
    if precision == "fp32":
        manifest["builder"] = onnx_mod.export_onnx(job.model, tmp, job.k, job.size)
    elif precision == "fp16":
        manifest["builder"] = {"converter": "hac_export.fp16 (trunk FP16; attention, GRU, FC, I/O FP32)",
                               **fp16_mod.convert_mixed_fp16(job.made[("onnx", "fp32")], tmp)}
    else:
        import onnx
        import onnxruntime

        src = job.made[("onnx", "fp32")]
        graph = onnx.load(str(src))
        trunk = onnx_mod.trunk_nodes(graph)
        exclude = [n.name for n in graph.graph.node if n.name not in trunk]
        steps.say(f"{name}: calibrating on {len(job.clips.x)} clips")
        manifest["quantization"] = int8_mod.quantize_int8(src, tmp, job.clips.x, exclude,
                                                          job.calib_method or "minmax", job.activations,
                                                          onnx_mod.INPUT_NAME)
        manifest["builder"] = {"onnxruntime": onnxruntime.__version__}
    onnx_mod.set_metadata(tmp, manifest)
    manifest["builder"].update(onnx_mod.verify_onnx(tmp, expect_gru=job.model.config.temporal == "gru",
                                                    outputs=outputs_mod.output_names(job.model)))
    return "cpu"


def _program(job: _Job, precision: str = "fp32"):
    """The torch.export program of the model in ``precision`` (reduced: ``pt2.mixed_precision``), made once."""
    from hac_export import pt2 as pt2_mod

    if precision not in job.programs:
        model = job.model if precision == "fp32" else pt2_mod.mixed_precision(job.model, precision)
        job.programs[precision] = pt2_mod.export_program(model, job.k, job.size, job.batch[2])
    return job.programs[precision]


def _write_pt2(job: _Job, precision: str, tmp: Path, name: str, manifest: dict, steps) -> str:
    from hac_export import pt2 as pt2_mod

    manifest["builder"] = pt2_mod.save_program(_program(job), tmp, manifest)
    return "cpu"


def _write_aoti(job: _Job, precision: str, tmp: Path, name: str, manifest: dict, steps) -> str:
    import torch

    from hac_export import pt2 as pt2_mod

    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps.say(f"{name}: compiling with AOTInductor for {device} (takes a while)")
    manifest["builder"] = pt2_mod.compile_aoti(_program(job, precision), tmp, manifest, device)
    if precision != "fp32":
        manifest["builder"]["mixed"] = pt2_mod.MIXED_NOTE.format(precision.upper())
    return device


def _write_trt(job: _Job, precision: str, tmp: Path, name: str, manifest: dict, steps) -> str:
    from hac_export import trt as trt_mod

    steps.say(f"{name}: building the TensorRT engine")
    manifest["builder"] = trt_mod.build_engine(job.made[("onnx", precision)], tmp, precision, job.batch,
                                               job.workspace_gb)
    return "cuda:0"


#: format (a row of ``hac_runtime.spec.FORMATS``) → its writer: ``(job, precision, tmp, name, manifest, steps)``
#: writes the artifact to ``tmp``, fills the manifest's builder facts and returns the device parity runs on
WRITERS = {"onnx": _write_onnx, "pt2": _write_pt2, "aoti": _write_aoti, "trt": _write_trt}


def _write_artifact(job: _Job, fmt: str, precision: str, tmp: Path, name: str, manifest: dict, steps) -> str:
    writer = WRITERS.get(fmt)
    if writer is None:
        raise HacFailure(f"format {fmt!r} has no writer in hac_export.api.WRITERS")
    return writer(job, precision, tmp, name, manifest, steps)


def retire_other_checkpoints(out: Path, source_sha: str) -> list[Path]:
    """An export folder is one checkpoint's: once this export has published, every artifact in ``out`` whose
    manifest names another checkpoint moves into ``out/replaced-<its sha256[:12]>/`` (manifest first, each
    by one rename), so ``--engine auto`` never sees it and nothing is lost. Returns where they went."""
    moved = []
    for artifact, manifest in folder_manifests(out):
        other = manifest.get("source_sha256")
        if not other or other == source_sha:
            continue
        dest = out / f"replaced-{other[:12]}"
        dest.mkdir(exist_ok=True)
        path = manifest_path(artifact)
        os.replace(path, dest / path.name)
        if artifact.exists():
            os.replace(artifact, dest / artifact.name)
        moved.append(dest / artifact.name)
    return moved


def _write_parity(out: Path, records: dict, checkpoint: Path, source_sha: str, inputs: str) -> Path:
    """Merge this export's parity records into ``out/parity.json`` (records of the same checkpoint are kept)."""
    path = out / PARITY_FILE
    old = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(path.read_text())
    kept = old.get("artifacts", {}) if old.get("source_sha256") == source_sha else {}
    for name in records:
        base = name[:-len(".failed")] if name.endswith(".failed") else name
        kept.pop(base, None)
        kept.pop(base + ".failed", None)
    doc = {"reference": REFERENCE, "source": checkpoint.name, "source_sha256": source_sha,
           "toolkit_version": __version__, "inputs": inputs, "artifacts": {**kept, **records}}
    write_json(path, doc)
    return path


def _summary(report: ExportReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hac-export → {report.out}")
    table.add_column("artifact", no_wrap=True)
    for col in ("prec", "status", "max_abs", "cos min", "top1", "MB", "s"):
        table.add_column(col, no_wrap=True)
    for a in report.artifacts:
        p = a["parity"]
        if FORMATS[a["format"]].packs and a["status"] == "passed":  # a package: its files' parity is above
            n = len(a["models"])
            table.add_row(a["name"], a["precision"], "packed", f"{n} model{'s' if n != 1 else ''}", "—", "—",
                          f"{sum(f.stat().st_size for f in a['path'].rglob('*') if f.is_file()) / 1e6:.0f}",
                          f"{a['seconds']:.0f}")
            continue
        if p is None:  # not made
            table.add_row(a["name"], a["precision"], "ERROR", "—", "—", "—", "—", f"{a['seconds']:.0f}")
            continue
        table.add_row(a["name"], a["precision"], "passed" if a["status"] == "passed" else "FAILED",
                      f"{p['max_abs']:.1e}", f"{p['cosine_min']:.5f}", f"{p['top1_agree']:.2f}",
                      f"{a['path'].stat().st_size / 1e6:.0f}", f"{a['seconds']:.0f}")
    Console(stderr=True).print(table)
