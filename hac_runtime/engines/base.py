"""The engine interface and the artifact manifest (CONTRACTS.md, "Manifest").

Every artifact ``hac-export`` writes sits beside ``<artifact>.json``: what the
artifact is (format, precision), what it takes (``input {name, shape}`` with a
symbolic ``"batch"``), what it returns (``output``), the classes and the
preprocessing, the checkpoint's checksum, builder facts and the parity verdict.
``load_engine`` refuses an artifact whose manifest is missing, names another
file, failed its parity check, or does not fit the artifact, with one line.

Backends live one per folder (``ort``, ``trt``, ``torch``, ``openvino``), each with a
``loader`` (open and check the artifact) and a ``runner`` (the ``Engine``); which
engine runs which format comes from ``hac_runtime.spec``. ``Engine.infer``
validates every batch before the backend's ``_run`` sees it (Polygraphy's runner
pattern), so no backend can skip the check. Nothing heavy is imported here: each
backend imports its library when used.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from hac_runtime import spec
from hac_runtime.devices import parse_device
from hac_runtime.errors import HacError
from hac_runtime.spec import Preprocess

MANIFEST_SCHEMA = "hac-manifest/1"
CUDA_GRAPH_ENGINES = tuple(n for n, e in spec.ENGINES.items() if e.cuda_graphs)  #: replay CUDA graphs (on CUDA)
ENGINES = tuple(spec.ENGINES)
REQUIRED = ("format", "precision", "status", "artifact", "classes", "preprocess", "input", "output",
            "source_sha256", "toolkit_version")


def manifest_path(artifact) -> Path:
    """``hac.onnx`` → ``hac.onnx.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(artifact) -> dict:
    """The manifest beside ``artifact``; a missing or unreadable one is a one-line HacError."""
    artifact = Path(artifact)
    path = manifest_path(artifact)
    if not path.is_file():
        raise HacError(f"{artifact}: no manifest {path.name} beside it (export artifacts with hac-export; keep each with its .json)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HacError(f"{path}: unreadable manifest ({type(e).__name__})") from None
    if not isinstance(manifest, dict):
        raise HacError(f"{path}: not a HAC manifest (expected a JSON object)")
    return manifest


def check_manifest(manifest: dict, artifact, require_passed: bool = True, verify_file: bool = True) -> dict:
    """Check that ``manifest`` describes ``artifact``; return it. Any mismatch → one-line HacError."""
    artifact = Path(artifact)
    where = manifest_path(artifact).name
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise HacError(f"{where}: not a HAC manifest (lacks {', '.join(missing)})")
    if require_passed and manifest["status"] != "passed":
        raise HacError(f"{artifact.name}: refused, {parity_verdict(manifest)}")
    fmt = manifest["format"]
    if fmt not in spec.FORMATS:
        raise HacError(f"{where}: unknown format {fmt!r} (known: {', '.join(spec.FORMATS)})")
    suffix = spec.FORMATS[fmt].suffix
    if not artifact.name.endswith(suffix):
        raise HacError(f"{artifact}: a {fmt} manifest needs a {suffix} file, not {artifact.name}")
    inp, out = manifest["input"], manifest["output"]
    pre, classes = Preprocess.from_dict(manifest["preprocess"], where), manifest["classes"]
    try:  # k and S recorded in the shapes are the preprocess's (one cross-check, here)
        ok = list(inp["shape"]) == pre.input_shape and list(out["shape"]) == ["batch", len(classes)]
    except (KeyError, TypeError):
        ok = False
    attention = manifest.get("attention")
    if attention is not None and (not isinstance(attention, dict) or not attention.get("name")
                                  or list(attention.get("shape") or []) != ["batch", pre.k]):
        ok = False
    if not ok:
        raise HacError(f"{where}: inconsistent input/output/classes/preprocess (input {inp.get('shape')}, "
                       f"output {out.get('shape')}, attention {(attention or {}).get('shape')}, "
                       f"{len(classes)} classes)")
    if verify_file:
        facts = manifest["artifact"]
        if not artifact.is_file():
            raise HacError(f"{artifact}: model file not found")
        size = artifact.stat().st_size
        if facts.get("bytes") != size or facts.get("sha256") != sha256_of(artifact):
            raise HacError(f"{artifact}: does not match its manifest {where} (size or sha256 differs; "
                           f"the manifest describes {facts.get('file')!r}): re-export it")
    return manifest


def parity_figures(parity: dict) -> str:
    """``max_abs 1.87, cosine 0.3900, top-1 1.000 (1 tie)``: the figures every parity verdict quotes."""
    ties = parity.get("top1_ties") or 0
    return (f"max_abs {parity.get('max_abs', float('nan')):.3g}, cosine {parity.get('cosine_min', float('nan')):.4f}, "
            f"top-1 {parity.get('top1_agree', float('nan')):.3f}" + (f" ({ties} tie{'s' * (ties > 1)})" if ties else ""))


def parity_verdict(manifest: dict) -> str:
    """``failed parity at export (max_abs 1.87, cosine 0.3900, top-1 1.000: batch 1: cosine_min …)``."""
    parity = manifest.get("parity") or {}
    if manifest.get("status") == "passed":
        return "passed parity"
    if "max_abs" not in parity:
        return f"not checked for parity (status {manifest.get('status')!r})"
    why = "; ".join(parity.get("failures", []))
    return f"failed parity at export ({parity_figures(parity)}" + (f": {why})" if why else ")")


class Engine:
    """One loaded artifact. ``infer((B, k, 3, S, S) float32) → (B, classes)`` logits; ``infer_all`` → the
    logits and, where the artifact has it (manifest ``attention``), the per-frame self-attention α (B, k)
    of eq. 2 (else None).

    NumPy in → NumPy out. Engines that run on a torch device also take a torch
    tensor (on that device, zero-copy where the backend allows) and return one.

    Safe to call from several threads: a backend whose state one call owns (a TensorRT execution context and
    its buffers, a CUDA graph's static input) sets ``serial`` and its calls take turns.
    """

    kind = ""
    serial = False  #: calls take turns (``one_at_a_time``): the backend holds per-call state in the engine

    def __init__(self, artifact, manifest: dict, device: str, precision: str | None = None):
        self.artifact = Path(artifact)
        self._turns = threading.Lock()
        self.manifest = manifest
        self.device = device
        self.input_name = manifest["input"]["name"]
        self.input_shape = list(manifest["input"]["shape"])
        self.output_name = manifest["output"]["name"]
        self.attention_name = (manifest.get("attention") or {}).get("name")
        #: what ``_run`` returns, in this order
        self.output_names = [self.output_name] + ([self.attention_name] if self.attention_name else [])
        self.classes = list(manifest["classes"])
        self.preprocess = Preprocess.from_dict(manifest["preprocess"], str(self.artifact))
        self.artifact_precision = manifest["precision"]
        #: what it computes in: the artifact's precision, or a run's (OpenVINO's bf16 on an FP32 file)
        self.precision = precision or manifest["precision"]
        self.format = manifest["format"]
        limits = manifest["input"].get("batch") or {}
        self.min_batch, self.max_batch = limits.get("min") or 1, limits.get("max")

    @property
    def providers(self) -> list[str]:
        """What actually runs the model (ONNX Runtime's active providers; the backend name elsewhere)."""
        return [self.kind]

    def check_input(self, batch) -> int:
        """Validate a batch's shape and dtype; return its size B."""
        shape = tuple(getattr(batch, "shape", ()))
        dtype = str(getattr(batch, "dtype", type(batch).__name__)).replace("torch.", "")
        if len(shape) != 5 or list(shape[1:]) != self.input_shape[1:] or shape[0] < 1:
            raise HacError(f"{self.artifact.name}: input must be (B, {', '.join(map(str, self.input_shape[1:]))}), got {shape}")
        if dtype != "float32":
            raise HacError(f"{self.artifact.name}: input must be float32, got {dtype}")
        if self.max_batch is not None and shape[0] > self.max_batch:
            raise HacError(f"{self.artifact.name}: batch {shape[0]} exceeds its maximum batch {self.max_batch} "
                           f"(re-export with a larger --batch MIN:OPT:MAX)")
        return shape[0]

    def infer(self, batch):
        """Validate ``batch`` (shape, dtype, batch limits), then run it: the logits."""
        return self.infer_all(batch)[0]

    def infer_all(self, batch) -> tuple:
        """``(logits, alpha)``: ``infer`` with the artifact's α (eq. 2, (B, k)), or None where it has none.

        A batch below a profile's minimum is padded up to it (repeating its last clip) and the outputs
        sliced back."""
        b = self.check_input(batch)
        if b < self.min_batch:
            pad = self.min_batch - b
            if isinstance(batch, np.ndarray):
                batch = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)])
            else:
                import torch

                batch = torch.cat([batch, batch[-1:].expand(pad, *batch.shape[1:])])
        with self.one_at_a_time():
            outputs = self._run(batch)
        if len(outputs) != len(self.output_names):
            raise HacError(f"{self.artifact.name}: the {self.kind} engine returned {len(outputs)} outputs, its "
                           f"manifest names {len(self.output_names)} ({', '.join(self.output_names)})")
        logits, alpha = outputs[0][:b], (outputs[1][:b] if len(outputs) > 1 else None)
        return logits, alpha

    def _run(self, batch) -> tuple:
        """The backend's inference on a batch ``infer`` has already checked: its outputs, in the order of
        ``output_names``."""
        raise NotImplementedError

    def one_at_a_time(self):
        """The lock a ``serial`` engine's calls, and its ``close``, take in turn; a context doing nothing otherwise."""
        return self._turns if self.serial else nullcontext()

    #: the torch CUDA stream the backend runs on, where it has one that events can be recorded on
    stream = None
    _marks = None
    STAGES = ("h2d_ms", "compute_ms", "d2h_ms")

    def _mark(self, i: int) -> None:
        """Backends call this at stage boundaries 0–3 (before the copy in, before compute, after compute,
        after the copy out); it records an event on the engine's stream when ``infer_timed`` asked for one."""
        if self._marks is not None:
            self._marks[i].record(self.stream)

    def infer_timed(self, batch):
        """``infer`` with CUDA events on the engine's own stream: (outputs, {h2d_ms, compute_ms, d2h_ms}),
        like trtexec's H2D / GPU compute / D2H. Backends mark every boundary; a stage a call does not have
        (no copy for a CUDA tensor) is then ~0.
        Not for concurrent calls on one engine."""
        if self.stream is None:
            raise HacError(f"{self.artifact.name}: the {self.kind} engine runs on no CUDA stream of its own "
                           "to time (ONNX Runtime's is internal)")
        import torch

        self._marks = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        try:
            out = self.infer(batch)
            self.stream.synchronize()
            marks = self._marks
        finally:
            self._marks = None
        return out, {name: marks[i].elapsed_time(marks[i + 1]) for i, name in enumerate(self.STAGES)}

    def close(self) -> None:
        """Release the backend's resources; the engine is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"{type(self).__name__}({self.artifact.name}, {self.format}/{self.precision}, "
                f"device={self.device}, providers={self.providers})")


def run_on_host(batch, run) -> tuple:
    """``run`` (NumPy in → a tuple of NumPy outputs) on ``batch``; a torch tensor goes through host memory and
    its outputs come back on its device (engines whose backend takes only host arrays: OpenVINO, a Triton server)."""
    if isinstance(batch, np.ndarray):
        return tuple(run(batch))
    import torch

    return tuple(torch.from_numpy(o).to(batch.device) for o in run(batch.detach().cpu().numpy()))


def load_engine(artifact, engine: str = "auto", device: str = "auto", manifest: dict | None = None,
                cuda_graph: bool = False, require_passed: bool = True, precision: str | None = None,
                spin: bool = True) -> Engine:
    """Open ``artifact`` on ``engine`` (``auto``: the one that runs its format) and ``device``.

    ``manifest`` defaults to ``<artifact>.json``. The manifest must say the artifact passed parity
    unless ``require_passed=False`` — only for a caller that judges it itself (hac-export, before
    publishing). ``cuda_graph``: TensorRT and torch on CUDA, replay one CUDA graph per batch bucket.
    ``precision``: a run precision other than the artifact's, where ``spec.RUNS`` has one (OpenVINO bf16).
    ``spin`` False: an ONNX Runtime CPU session's worker threads sleep between calls rather than spin — less
    CPU, a little more latency, for callers whose other threads need the cores (``ort.loader``); other engines
    do not spin (OpenVINO measured so) and ignore it.
    """
    artifact = Path(artifact)
    if not artifact.exists():
        raise HacError(f"{artifact}: model file not found")
    if not artifact.is_file():
        raise HacError(f"{artifact}: not a file")
    manifest = check_manifest(manifest if manifest is not None else read_manifest(artifact), artifact,
                              require_passed=require_passed)
    fmt = manifest["format"]
    runs_here = spec.engines_for(fmt)
    engine = (engine or "auto").lower()
    if engine == "auto":
        engine = runs_here[0]
    elif engine not in spec.ENGINES:
        raise HacError(f"unknown engine {engine!r}; choose auto, {', '.join(spec.ENGINES)}")
    elif engine not in runs_here:
        wanted = spec.formats_for(engine)
        hint = (f"export one it runs with hac-export --format {' or '.join(wanted)}" if wanted else
                f"the {engine} engine runs no exported file: --model grpc://HOST:PORT/MODEL")
        article = "an" if fmt[0] in "aeiou" else "a"
        raise HacError(f"{artifact.name} is {article} {fmt} artifact: it runs on the {' or '.join(runs_here)} engine, not "
                       f"{engine} ({hint})")
    parse_device(device)
    options = {}
    if precision is not None and precision != manifest["precision"]:
        if precision not in {r.precision for r in spec.runs_for(fmt, manifest["precision"], engine)}:
            raise HacError(f"{artifact.name}: the {engine} engine cannot run a {manifest['precision']} {fmt} "
                           f"artifact as {precision}")
        options["precision"] = precision
    if cuda_graph:
        if engine not in CUDA_GRAPH_ENGINES:
            raise HacError(f"{artifact.name}: CUDA-graph replay applies to the {' and '.join(CUDA_GRAPH_ENGINES)} "
                           f"engines on a CUDA GPU, not to {engine}")
        options["cuda_graph"] = True
    if not spin and engine == "ort":
        options["spin"] = False
    module_name, cls = spec.ENGINES[engine].runner.split(":")
    return getattr(importlib.import_module(module_name), cls)(artifact, manifest, device, **options)
