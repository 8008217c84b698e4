"""``--engine auto``: open every way this machine can run a model, time each briefly, keep the fastest.

``model`` is one artifact (its format fixes the engine; CUDA and CPU are both
tried where the backend has both) or an export folder (every artifact in it
that passed its parity check, optionally of one precision). Candidates that
cannot start here are skipped with their reason; the choice and the measured
times come back as ``EngineChoice`` so the caller can say which was taken.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hac_runtime import spec
from hac_runtime.engines.base import CUDA_GRAPH_ENGINES, MANIFEST_SCHEMA, load_engine, parity_figures, parity_verdict, read_manifest
from hac_runtime.engines.triton.loader import is_server_url
from hac_runtime.errors import HacError, HacException

PARITY_FILE = "parity.json"  #: the verdicts of one export folder, and the checkpoint it belongs to


@dataclass
class Candidate:
    artifact: Path
    engine: str
    device: str
    precision: str | None = None  #: the run's precision when it is not the artifact's (OpenVINO bf16)
    ms: float | None = None  # median time of one batch-1 clip
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.artifact.name} on {self.engine}/{self.device}" + (f" ({self.precision})" if self.precision else "")


@dataclass
class EngineChoice:
    engine: object  # the opened Engine
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  #: artifacts of the folder left out, with the reason

    def describe(self) -> str:
        """One line: what runs, how fast it was, what it beat, what could not start and what was left out."""
        c = self.chosen
        others = [o for o in self.candidates if o is not c]
        failed = [f"{o.label}: {o.error}" for o in others if o.error]
        beaten = [f"{o.label} {o.ms:.1f} ms" for o in others if o.ms is not None]
        if c.ms is None and not failed:
            line = f"{c.label} (the only engine for it here)"
        elif c.ms is None:
            line = f"{c.label} (the only one that started)"
        else:
            line = f"{c.label}, fastest at {c.ms:.1f} ms per clip" + (f" (vs {'; '.join(beaten)})" if beaten else "")
        if failed:
            line += f"; could not start {'; '.join(failed)}"
        if self.skipped:
            line += f"; skipped {'; '.join(map(str, self.skipped))}"
        return line


def installed(engine: str) -> bool:
    """Whether the Python package ``engine`` needs is importable here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(spec.ENGINES[engine].package) is not None


def _cuda_sides(engine: str) -> bool:
    """Whether ``engine`` can run on a CUDA GPU here (checked without starting anything heavy)."""
    if "cuda" not in spec.ENGINES[engine].devices or not installed(engine):
        return False
    if engine == "trt":
        return True
    if engine == "ort":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    import torch

    return torch.cuda.is_available()


def _devices_for(manifest: dict, engine: str, device: str) -> list[str]:
    """The devices to try ``engine`` on: the asked one, or for ``auto`` CUDA where it can run and the CPU."""
    if device != "auto":
        return [device]
    if manifest["format"] == "aoti":
        return [(manifest.get("builder") or {}).get("device", "cpu")]
    devices = spec.ENGINES[engine].devices
    out = ["cuda"] if "cuda" in devices and _cuda_sides(engine) else []
    return out + (["cpu"] if "cpu" in devices else []) or ["cuda"]


@dataclass
class Skipped:
    """An artifact of an export folder that ``--engine auto`` did not consider, and why."""

    name: str
    reason: str

    def __str__(self):
        return f"{self.name}: {self.reason}"


def folder_checkpoint(folder: Path) -> str | None:
    """The checkpoint SHA-256 an export folder belongs to: the one its ``parity.json`` names (None without one)."""
    import json

    try:
        doc = json.loads((folder / PARITY_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc.get("source_sha256") if isinstance(doc, dict) else None


def folder_manifests(folder: Path):
    """``(artifact, manifest)`` of every HAC manifest in an export folder (passed, failed or pending; other JSON
    files, ``parity.json`` included, are not manifests)."""
    for path in sorted(Path(folder).glob("*.json")):
        if path.name == PARITY_FILE:
            continue
        artifact = path.with_name(path.name[: -len(".json")])
        try:
            manifest = read_manifest(artifact)
        except HacError:
            continue
        if manifest.get("schema") == MANIFEST_SCHEMA and manifest.get("format") in spec.FORMATS:
            yield artifact, manifest


def scan_folder(folder: Path, precision: str | None = None) -> tuple[list[Path], list[Skipped]]:
    """Artifacts of an export folder that passed parity and belong to its checkpoint, and what was left out.

    An export folder holds one checkpoint's artifacts: those whose ``source_sha256`` differs from the
    folder's ``parity.json`` (a stale or foreign export) are left out; without a ``parity.json``, artifacts
    of different checkpoints are refused."""
    found, skipped, sources = [], [], {}
    for artifact, manifest in folder_manifests(folder):
        if precision and manifest.get("precision") != precision:
            continue
        if manifest.get("status") != "passed":
            skipped.append(Skipped(artifact.name, parity_verdict(manifest)))
            continue
        if not artifact.is_file():
            skipped.append(Skipped(artifact.name, "model file missing beside its manifest"))
            continue
        found.append(artifact)
        sources[artifact] = manifest.get("source_sha256")
    own = folder_checkpoint(folder)
    if own is not None:
        for artifact in [a for a in found if sources[a] != own]:
            found.remove(artifact)
            skipped.append(Skipped(artifact.name, f"exported from another checkpoint (source_sha256 "
                                                  f"{str(sources[artifact])[:12]}…, the folder's {PARITY_FILE} "
                                                  f"names {own[:12]}…)"))
    elif len(set(sources.values())) > 1:
        raise HacError(f"{folder}: holds artifacts of {len(set(sources.values()))} different checkpoints and no "
                       f"{PARITY_FILE} to tell which is current: export each checkpoint into its own folder")
    return found, skipped


def artifacts_in(folder: Path, precision: str | None = None) -> list[Path]:
    """Artifacts in an export folder that passed parity and belong to its checkpoint (``precision`` filters)."""
    return scan_folder(folder, precision)[0]


def candidates_for(model, engine: str = "auto", device: str = "auto", precision: str | None = None,
                   skipped: list | None = None) -> list[Candidate]:
    """Every (artifact, engine, device, precision) to try for ``model`` (an artifact or an export folder).

    ``engine="auto"``: every run of ``spec.RUNS`` whose engine is installed here and whose parity the export
    judged and passed (the artifact's own engine always). ``precision`` keeps runs of that precision.
    ``skipped``, when given, receives the folder's artifacts (and runs) left out, with the reason."""
    model = Path(model)
    if precision is not None and precision not in spec.PRECISIONS:
        raise HacError(f"unknown precision {precision!r}; choose {', '.join(spec.PRECISIONS)}")
    skipped = [] if skipped is None else skipped
    if model.is_dir():
        artifacts, left_out = scan_folder(model)
        skipped.extend(left_out)
        if not artifacts:
            why = f" ({'; '.join(map(str, left_out))})" if left_out else " (run hac-export first)"
            raise HacError(f"{model}: no exported artifact that passed its parity check{why}")
    elif not model.exists():
        raise HacError(f"{model}: model file not found")
    else:
        artifacts = [model]
    out = []
    for artifact in artifacts:
        manifest = read_manifest(artifact)
        fmt = manifest.get("format")
        if fmt not in spec.FORMATS:
            return [Candidate(artifact, engine, device)]  # load_engine says what is wrong
        engines = spec.engines_for(fmt)
        if engine != "auto" and engine not in engines:
            if model.is_dir():
                continue
            return [Candidate(artifact, engine, device)]  # load_engine says why it cannot
        for run in spec.runs_for(fmt, manifest["precision"], None if engine == "auto" else engine):
            if precision is not None and run.precision != precision:
                continue
            if not run.native:
                verdict = run.verdict(manifest.get("parity"))
                if engine == "auto" and not installed(run.engine):
                    continue  # an optional engine that is not installed: nothing to say
                if not (verdict or {}).get("passed"):
                    why = ("never judged for parity at export (re-export with it installed)" if verdict is None
                           else f"failed parity at export ({parity_figures(verdict)})" if "max_abs" in verdict
                           else f"could not run at export ({verdict.get('error')})")
                    skipped.append(Skipped(f"{artifact.name} on {run.engine} ({run.precision})", why))
                    continue
            run_precision = None if run.precision == manifest["precision"] else run.precision
            out += [Candidate(artifact, run.engine, d, run_precision)
                    for d in _devices_for(manifest, run.engine, device)]
    if not out:
        what = f" as {precision}" if precision else ""
        why = f" ({'; '.join(map(str, skipped))})" if skipped else ""
        on = "" if engine == "auto" else f" on the {engine} engine"
        raise HacError(f"{model}: no artifact that passed its parity check runs here{on}{what}{why}")
    return out


def time_engine(engine, seconds: float = 0.5, min_runs: int = 3) -> float:
    """Median milliseconds of one batch-1 clip (after one untimed call), over ``seconds`` or ``min_runs``."""
    x = np.zeros((max(1, engine.min_batch), *engine.input_shape[1:]), np.float32)
    engine.infer(x)
    times, t_end = [], time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        engine.infer(x)
        times.append((time.perf_counter() - t0) * 1e3 / x.shape[0])
    return float(np.median(times))


def _same_model(engines: list) -> None:
    first = engines[0]
    for e in engines[1:]:
        if (e.classes, e.input_shape[1:], e.preprocess) != (first.classes, first.input_shape[1:], first.preprocess):
            raise HacError(f"{first.artifact.parent}: {first.artifact.name} and {e.artifact.name} are different "
                           f"models (classes, input or preprocessing differ): keep one model per export folder")


def _server_choice(model, engine, device, precision, cuda_graph, timeout) -> EngineChoice:
    """The ``triton`` engine on the server model at ``model``; the options that choose among local runs refused."""
    if not is_server_url(model):
        raise HacError(f"--engine triton needs --model grpc://HOST:PORT/MODEL (or http://…), not {model}")
    if engine not in ("auto", "triton"):
        raise HacError(f"{model} is a Triton server's model: it runs on the triton engine, not {engine}")
    for option, value, neutral in (("--device", device, "auto"), ("--precision", precision, None),
                                   ("--cuda-graph", cuda_graph, False)):
        if value != neutral:
            raise HacError(f"{option} does not apply to a Triton server's model (the server decides)")
    from hac_runtime.engines.triton.runner import TritonEngine

    opened = TritonEngine(str(model), timeout=timeout)
    c = Candidate(Path(opened.where.model), "triton", opened.where.address)
    return EngineChoice(opened, c, [c], [])


def _open(c: Candidate, cuda_graph: bool, spin: bool = True):
    graphs = cuda_graph and c.engine in CUDA_GRAPH_ENGINES and str(c.device).startswith("cuda")
    return load_engine(c.artifact, engine=c.engine, device=c.device, cuda_graph=graphs,
                       precision=c.precision, spin=spin)


def choose_engine(model, engine: str = "auto", device: str = "auto", precision: str | None = None,
                  seconds: float = 0.5, cuda_graph: bool = False, timeout: float | None = None,
                  spin: bool = True) -> EngineChoice:
    """Open ``model`` on the fastest engine available here (or on ``engine`` when named).

    ``cuda_graph``: TensorRT candidates replay CUDA graphs (others are unaffected). A server address
    (``grpc://HOST:PORT/MODEL``) opens the ``triton`` engine, ``timeout`` seconds per request. ``spin``:
    ``load_engine``'s (the pipeline's engine sleeps between calls, as it will run)."""
    engine = (engine or "auto").lower()
    if engine != "auto" and engine not in spec.ENGINES:
        raise HacError(f"unknown engine {engine!r}; choose auto, {', '.join(spec.ENGINES)}")
    if engine == "triton" or is_server_url(model):
        return _server_choice(model, engine, device, precision, cuda_graph, timeout)
    skipped: list[Skipped] = []
    candidates = candidates_for(model, engine, device, precision, skipped)
    if len(candidates) == 1:
        c = candidates[0]
        return EngineChoice(_open(c, cuda_graph, spin), c, candidates, skipped)
    opened = []
    for c in candidates:
        try:
            e = _open(c, cuda_graph, spin)
        except HacException as err:
            c.error = str(err)
            continue
        opened.append((c, e))
    if not opened:
        raise HacError(f"{model}: no engine could start here ({'; '.join(c.error for c in candidates)})")
    try:
        _same_model([e for _, e in opened])
        for c, e in opened:
            c.ms = time_engine(e, seconds)
    except BaseException:
        for _, e in opened:
            e.close()
        raise
    best_c, best = min(opened, key=lambda ce: ce[0].ms)
    for c, e in opened:
        if e is not best:
            e.close()
    return EngineChoice(best, best_c, candidates, skipped)

