"""``hac-bench``'s one function: export every engine × precision, check parity, time them against eager PyTorch.

Per batch size, all candidates (eager included) are timed interleaved in one
process (``timing.measure_interleaved``) after a timed warm-up; speedups are
ratios from that same run. Without a checkpoint a built-in default model is
used (the paper's configuration: ResNet50, k = 5, 224 px, hybrid attention,
GRU 128, seeded, untrained) and, without ``--calib``, inputs are ``hac-synth``
clips run through ``hac-prepare``.
"""
from __future__ import annotations

import contextlib
import importlib
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hac_export.bench.flops import clip_flops
from hac_export.bench.timing import measure_interleaved, percentiles_ms, warm_up
from hac_export.parity_inputs import synthetic_clips
from hac_runtime import __version__, spec
from hac_runtime.atomic import check_output_dir, check_output_file
from hac_runtime.engines.base import parity_figures
from hac_runtime.errors import HacError, HacException

ENGINE_CHOICES = spec.artifact_engines()  #: --engine values (``all``: every one)
SETTLE_S = 0.05  # untimed pause between timed calls (timing.measure_interleaved)
UNTRAINED_NOTE = ("parity of an untrained model says little (its logits are nearly flat, so top-1 flips easily and INT8 "
                  "especially looks worse than it is): judge INT8 on a trained checkpoint with real --calib clips")


@dataclass
class Candidate:
    """One row of ``spec.RUNS`` to measure: ``engine`` runs the ``fmt`` artifact of ``artifact_precision``
    as ``precision``."""

    engine: str
    fmt: str
    precision: str
    artifact_precision: str
    status: str = "ok"
    reason: str = ""
    path: Path | None = None
    parity: dict = field(default_factory=dict)
    runner: object = None

    @property
    def run(self) -> spec.Run:
        return spec.Run(self.engine, self.fmt, self.precision, self.artifact_precision)

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.fmt}" if self.fmt not in ("onnx", "trt") else self.engine


def candidates_for(engines: list[str], full: bool = False, machine: str = "cpu") -> list[Candidate]:
    """The rows of ``spec.RUNS`` for ``engines``: the default selection on ``machine`` (``cpu``, ``cuda``),
    or every run with ``full``."""
    return [Candidate(r.engine, r.fmt, r.precision, r.artifact_precision) for r in spec.RUNS
            if r.engine in engines and (full or machine in r.default)]


def parse_engines(text) -> list[str]:
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not names:
        raise HacError(f"--engine: give {', '.join(ENGINE_CHOICES)} or all")
    if "all" in names:
        return list(ENGINE_CHOICES)
    bad = [n for n in names if n not in ENGINE_CHOICES]
    if bad:
        raise HacError(f"--engine: unknown engine {bad[0]!r}; choose from {', '.join(ENGINE_CHOICES)}, all")
    return [e for e in ENGINE_CHOICES if e in names]


def parse_batches(text) -> list[int]:
    try:
        batches = sorted({int(t) for t in str(text).split(",") if t.strip()})
    except ValueError:
        raise HacError(f"--batch {text!r}: expected comma-separated positive integers, e.g. 1,8") from None
    if not batches or batches[0] < 1:
        raise HacError(f"--batch {text!r}: expected comma-separated positive integers, e.g. 1,8")
    return batches


def machine_facts() -> dict:
    import onnx
    import onnxruntime
    import torch

    import os

    from hac_runtime.machine import cpu_name

    cpu = cpu_name()

    versions = {"hac": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}
    for name in ("tensorrt", "openvino"):  # optional engines: absent is a fact, not an error
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001
            pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def default_checkpoint(folder: Path) -> Path:
    """The built-in default: the paper's configuration, seeded, untrained, classes of ``hac-synth``."""
    import torch

    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import read_checkpoint, save_checkpoint
    from hac_train.model import HACConfig, HACNet
    from hac_train.synth import EXPRESSIONS

    path = folder / "hac_default_resnet50.pt"
    if path.exists():
        try:
            read_checkpoint(path)
            return path
        except HacError:
            path.unlink()
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet50", num_classes=len(EXPRESSIONS), k=5))
    save_checkpoint(path, model, EXPRESSIONS, Preprocess(224, k=5),
                    train={"recipe": "none (built-in default, untrained)", "epoch": 0, "seed": 0})
    return path


def _export(candidates: list[Candidate], ckpt: Path, calib: Path, batch_max: int, out: Path, log,
            tolerances: dict | None = None) -> None:
    """One export for every candidate (each artifact written once, parity judged once per run); fill status,
    path and parity. An artifact that fails leaves the other rows as they are."""
    from hac_export.api import export

    wanted = [c for c in candidates if c.status == "ok"]
    if not wanted:
        return
    formats = list(dict.fromkeys(c.fmt for c in wanted))
    precisions = {c.artifact_precision for c in wanted}
    pairs = dict.fromkeys(f"{c.fmt} {c.artifact_precision}" for c in wanted)
    log(f"hac-bench: exporting {len(pairs)} artifacts ({', '.join(pairs)})")
    try:
        report = export(ckpt, formats=",".join(formats), fp16="fp16" in precisions, int8="int8" in precisions,
                        bf16="bf16" in precisions,
                        calib=calib, batch=f"1:{batch_max}:{batch_max}", out=out, tolerances=tolerances,
                        include_fp32=True, verbose=False, only={(c.fmt, c.artifact_precision) for c in wanted},
                        lines=lambda m: log(f"hac-bench: {m}"))
    except HacError as e:
        for c in wanted:
            c.status, c.reason = "export failed", str(e)
        return
    for c in wanted:
        made = [a for a in report.artifacts if a["format"] == c.fmt and a["precision"] == c.artifact_precision]
        if not made:
            c.status, c.reason = "export failed", f"no {c.artifact_precision} {c.fmt} artifact"
            continue
        a = made[0]
        if a["parity"] is None:
            c.status, c.reason = "export failed", a["error"]
            continue
        c.path = Path(a["path"])
        verdict = c.run.verdict(a["parity"])
        if a["status"] != "passed" and c.run.native:  # never timed: its numbers are not the model's
            c.status = "parity failed"
            c.reason = f"parity failed ({parity_figures(a['parity'])}): {'; '.join(a['parity']['failures'])}"
        elif a["status"] != "passed":
            c.status, c.reason = "parity failed", f"its {c.artifact_precision} artifact failed parity"
        elif verdict is None:
            c.status, c.reason = "unavailable", f"{c.engine} could not be judged here"
        elif "max_abs" not in verdict:
            c.status, c.reason = "unavailable", verdict.get("error", "could not run")
        elif not verdict["passed"]:
            c.status = "parity failed"
            c.reason = f"parity failed ({parity_figures(verdict)}): {'; '.join(verdict['failures'])}"
        c.parity = verdict or {}


def _availability(candidates: list[Candidate]) -> None:
    """Mark what this machine cannot run, with the reason (TensorRT needs CUDA; optional engines their package)."""
    import torch

    from hac_runtime.engines.select import installed

    for c in candidates:
        engine = spec.ENGINES[c.engine]
        if engine.devices == ("cuda",) and not torch.cuda.is_available():
            c.status, c.reason = "unavailable", "no CUDA GPU on this machine"
        elif not installed(c.engine):
            c.status, c.reason = "unavailable", f"{engine.description} is not installed ({engine.install})"


def run_bench(checkpoint=None, engines="all", batches="1,8", calib=None, json_path=None, plot=None, out=None,
              seconds: float = 5.0, warmup: float = 2.0, log=None, verbose: bool = True,
              tolerances: dict | None = None, full: bool = False) -> dict:
    """Benchmark engines against eager PyTorch; returns the bench document (CONTRACTS.md "Bench JSON").

    ``tolerances`` overrides parity tolerances per precision (as in ``hac_export.api.export``)."""
    import torch

    from hac_export.bench.peak import best_peak, measure_cpu_peak, measure_gpu_peak, peak_for
    from hac_runtime.engines.cuda_graphs import tf32_mode
    from hac_export.bench.report import print_table, write_json, write_plot
    from hac_runtime.engines import load_engine
    from hac_train.checkpoint import load_checkpoint

    log = log or (lambda msg: print(msg, flush=True))
    engines = parse_engines(engines)
    batches = parse_batches(batches)
    if checkpoint is not None:
        load_checkpoint(checkpoint)  # a bad checkpoint is refused before any work
    if calib is not None:
        from hac_export.int8 import find_clips

        find_clips(calib)  # so is calibration data without faces
    out = check_output_dir(Path(out) if out else Path("hac-bench"), "work folder")
    for path, what in ((json_path, "bench JSON"), (plot, "plot")):
        if path is not None:
            check_output_file(path, what)  # before minutes of work, not after them
    machine = machine_facts()
    on_gpu = machine["gpu"] is not None
    ckpt_path = Path(checkpoint) if checkpoint else default_checkpoint(out)
    model, ckpt = load_checkpoint(ckpt_path)
    del ckpt["state_dict"]  # the model holds its own copy of the weights (ResNet50: 100 MB)
    pre = ckpt["preprocess"]
    k, size = pre.k, pre.image_size
    trained = bool(ckpt.get("train", {}).get("epoch"))
    if calib is None:
        calib = synthetic_clips(out, size, log=lambda m: log(f"hac-bench: {m}"))
        inputs = "hac-synth clips (synthetic expressions from real photos), aligned by hac-prepare"
    else:
        calib = Path(calib)
        inputs = f"real clips from {calib}"

    from hac_export.int8 import load_clips

    clipset = load_clips(calib, pre, ckpt["classes"])
    x = clipset.x
    candidates = candidates_for(engines, full, "cuda" if on_gpu else "cpu")
    _availability(candidates)
    _export(candidates, ckpt_path, calib, max(batches), out, log, tolerances)

    log(f"hac-bench: measuring peak and FLOPs on {machine['gpu'] or machine['cpu']}")
    probe_peak = measure_gpu_peak if on_gpu else measure_cpu_peak
    peak = probe_peak()
    flops = clip_flops(model, k, size)

    # The eager baseline: the best plain PyTorch a user would run.
    device = torch.device("cuda" if on_gpu else "cpu")
    eager_model = model.to(device)
    eager_layout = _pick_eager_layout(eager_model, x[:1], device, warmup)
    eager_desc = f"eager PyTorch FP32, inference_mode, {eager_layout}" + (", CUDA, TF32 off" if on_gpu else ", CPU")

    runnable = [c for c in candidates if c.status == "ok" and c.path is not None]
    for c in runnable:
        try:
            dev = "cuda" if on_gpu and "cuda" in spec.ENGINES[c.engine].devices else "cpu"
            c.runner = load_engine(c.path, c.engine, dev,
                                   precision=None if c.precision == c.artifact_precision else c.precision)
        except HacException as e:
            c.status, c.reason = "unavailable", str(e)
    runnable = [c for c in runnable if c.runner is not None]

    rows = []
    for b in batches:
        xb = np.ascontiguousarray(x[np.arange(b) % len(x)])
        tb = torch.from_numpy(xb).to(device)

        def eager_fn(tb=tb):
            with torch.inference_mode(), (tf32_mode(False) if on_gpu else contextlib.nullcontext()):
                y = eager_model(tb)
            if on_gpu:
                torch.cuda.synchronize()
            return y

        fns = {"eager": eager_fn}
        for c in runnable:
            fns[c.label + "/" + c.precision] = (lambda r=c.runner, xb=xb: r.infer(xb))
        log(f"hac-bench: batch {b}: warming up {len(fns)} runners ({warmup:.0f} s each)")
        for f in fns.values():
            warm_up(f, warmup)
        log(f"hac-bench: batch {b}: timing, interleaved (≥ {seconds:.0f} s)")
        # The pause lets CPU runtimes' spinning threads stop; on a GPU it would only let the clocks drop.
        times = measure_interleaved(fns, min_rounds=10, min_seconds=seconds, settle=0.0 if on_gpu else SETTLE_S)
        device_ms = _device_times(runnable, eager_model, tb, xb, seconds) if on_gpu else {}
        eager_p50 = percentiles_ms(times["eager"])["p50_ms"]
        rows.append(_row("torch", "eager", "fp32", b, "ok", "", _size_mb(None), times["eager"], eager_p50,
                         {"max_abs": 0.0, "top1_agree": 1.0}, flops, k, device_ms.get("eager")))
        for c in candidates:
            key = c.label + "/" + c.precision
            parity = {"max_abs": c.parity.get("max_abs"), "top1_agree": c.parity.get("top1_agree")} if c.parity else None
            if key in times:
                rows.append(_row(c.engine, c.fmt, c.precision, b, c.status, c.reason, _size_mb(c.path), times[key],
                                 eager_p50, parity, flops, k, device_ms.get(key)))
            else:
                rows.append({"engine": c.engine, "format": c.fmt, "precision": c.precision, "batch": b,
                             "status": c.status, "reason": c.reason, "size_mb": _size_mb(c.path),
                             "p50_ms": None, "p90_ms": None, "p99_ms": None, "clips_per_s": None, "frames_per_s": None,
                             "speedup_vs_eager": None, "peak_fraction": None, "parity": parity})
    for c in runnable:
        c.runner.close()
    log("hac-bench: measuring the peak again (the best of both probes counts)")
    peak = best_peak(peak, probe_peak())
    for r in rows:
        against = peak_for(peak, r["precision"])
        if r.get("gflops") is not None and against:
            r["peak_fraction"] = round(r["gflops"] / against, 3)

    notes = []
    if not trained:
        notes.append(UNTRAINED_NOTE)
    doc = {"machine": machine, "model": {"checkpoint": str(ckpt_path), "config": ckpt["model"], "trained": trained,
                                         "gflops_per_clip": round(flops / 1e9, 2), "k": k, "image_size": size},
           "baseline": eager_desc, "peak": peak, "inputs": inputs, "notes": notes, "results": rows}
    if verbose:
        print_table(doc)
    if json_path:
        write_json(json_path, doc)
    if plot:
        write_plot(plot, doc)
    return doc


def _pick_eager_layout(model, x1: np.ndarray, device, warmup: float) -> str:
    """Contiguous or channels-last, whichever is faster here (short interleaved probe); the model is left so."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x1)).to(device)

    def run():
        with torch.inference_mode():
            model(t)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def as_layout(fmt):
        model.to(memory_format=fmt)
        warm_up(run, warmup / 2)

    best, best_t = "contiguous", float("inf")
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        as_layout(fmt)
        secs = measure_interleaved({"m": run}, min_rounds=3, min_seconds=warmup / 2)["m"]
        if float(np.median(secs)) < best_t:
            best, best_t = name, float(np.median(secs))
    model.to(memory_format=torch.channels_last if best == "channels_last" else torch.contiguous_format)
    return best


def _size_mb(path) -> float | None:
    if path is None:
        return None
    p = Path(path)
    return round(p.stat().st_size / 1e6, 1) if p.is_file() else None


def _device_times(runnable, eager_model, tb, xb, seconds: float) -> dict:
    """GPU: p50 stage times per runner from CUDA events on each engine's own stream (trtexec's H2D, GPU
    compute, D2H), host input in and host output out. Eager runs on the default stream with its input
    already on the GPU (compute only). Engines with no stream of their own (ONNX Runtime) get none."""
    import torch

    from hac_runtime.engines.cuda_graphs import tf32_mode

    def eager_call():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.inference_mode(), tf32_mode(False):
            start.record()
            eager_model(tb)
            end.record()
        end.synchronize()
        return {"compute_ms": start.elapsed_time(end)}

    calls = {"eager": eager_call}
    for c in runnable:
        if c.runner.stream is not None:
            calls[c.label + "/" + c.precision] = (lambda r=c.runner: r.infer_timed(xb)[1])
    records: dict[str, list] = {name: [] for name in calls}

    def recorded(name):
        def call():
            records[name].append(calls[name]())
            return records[name][-1]
        return call

    measure_interleaved({name: recorded(name) for name in calls}, min_rounds=10, min_seconds=seconds / 2,
                        timer=lambda fn: sum(fn().values()) / 1e3)  # the budget counts every stage
    out = {}
    for name, stages in records.items():
        out[name] = {f"{stage[:-3]}_p50_ms": round(float(np.median([s[stage] for s in stages])), 3)
                     for stage in stages[0]}
        out[name]["device_p50_ms"] = out[name].pop("compute_p50_ms")
    return out


def _row(engine, fmt, precision, batch, status, reason, size_mb, secs, eager_p50, parity, flops, k,
         device=None) -> dict:
    pct = percentiles_ms(secs)
    clips_per_s = batch / (pct["p50_ms"] / 1e3)
    achieved = flops * clips_per_s / 1e9
    return {"engine": engine, "format": fmt, "precision": precision, "batch": batch, "status": status,
            "reason": reason, "size_mb": size_mb, **{k_: round(v, 2) for k_, v in pct.items()},
            "clips_per_s": round(clips_per_s, 2), "frames_per_s": round(clips_per_s * k, 1),
            "speedup_vs_eager": round(eager_p50 / pct["p50_ms"], 2),
            "peak_fraction": None,  # filled in once the peak's second probe ran
            "gflops": round(achieved, 1), "iterations": int(len(secs)), "parity": parity,
            **(device or {})}  # GPU: device_p50_ms (compute), h2d_p50_ms, d2h_p50_ms
