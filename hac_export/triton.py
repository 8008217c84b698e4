"""``--format triton``: a Triton Inference Server model repository made of the artifacts this export made.

``REPO/<model>/config.pbtxt`` + ``REPO/<model>/1/model.onnx`` (platform ``onnxruntime_onnx``) or
``model.plan`` (``tensorrt_plan``), one model per packed artifact, named ``hac_<format>_<precision>``
(``hac_onnx_fp32``, ``hac_trt_fp16`` …). Each config carries ``max_batch_size``, the input and output
names, dtypes and dims of the artifact's manifest, ``dynamic_batching`` (preferred batch sizes from the
export profile, a short queue delay), one ``instance_group`` and ``labels.txt`` (Triton's classification
extension). The artifact's HAC manifest is written beside the model (``hac.json``) and into the config
(parameter ``hac_manifest``), so a client checks what it talks to before sending anything.

``backend="python"`` packs each ONNX file with a ``model.py`` for Triton's Python backend that runs it
with ONNX Runtime on the CPU: a CPU-only deployment (the server's Python needs ``onnxruntime``).
Parity is that of the packed files, judged when they were exported; only files that passed are packed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hac_runtime.engines.triton.loader import MANIFEST_PARAMETER  # what the triton engine reads back
from hac_runtime.errors import HacError

BACKENDS = ("onnxruntime", "python")
KINDS = ("gpu", "cpu")
REPOSITORY = "triton"  #: the repository folder in the export folder
QUEUE_DELAY_US = 2000  #: how long Triton may hold a request to fill a preferred batch
_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
_MODEL_PY = Path(__file__).parent / "assets" / "triton_python_model.py"  #: data, run by the server only


def model_name(fmt: str, precision: str) -> str:
    return f"hac_{fmt}_{precision}"


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_text(manifest: dict, name: str, backend: str = "onnxruntime", kind: str = "gpu", count: int = 1,
                max_batch: int | None = None) -> str:
    """``config.pbtxt`` for the artifact ``manifest`` describes (format onnx or trt); ``max_batch``: the
    export's largest batch, for files that take any (ONNX); an engine's profile maximum wins."""
    fmt = manifest["format"]
    if fmt == "trt":
        where, kind = 'platform: "tensorrt_plan"', "gpu"  # an engine runs on the GPU it was built for
    elif backend == "python":
        where, kind = 'backend: "python"', "cpu"
    else:
        where = 'platform: "onnxruntime_onnx"'
    inp, out = manifest["input"], manifest["output"]
    batch = inp.get("batch") or {}
    max_batch = batch.get("max") or max_batch or 16
    preferred = sorted({b for b in (batch.get("opt"), max_batch) if b and b <= max_batch})
    attention = manifest.get("attention")  # α (eq. 2), a second output where the model has it
    for tensor in (inp, out, *([attention] if attention else [])):
        if tensor.get("dtype", "float32") not in _DTYPES:
            raise HacError(f"{manifest['artifact'].get('file')}: Triton has no type for {tensor['dtype']}")
    compact = json.dumps(manifest, separators=(",", ":"), ensure_ascii=False)
    lines = [
        f"name: {_quote(name)}",
        where,
        f"max_batch_size: {max_batch}",
        "input [",
        f"  {{ name: {_quote(inp['name'])} data_type: {_DTYPES[inp.get('dtype', 'float32')]} "
        f"dims: [ {', '.join(str(d) for d in inp['shape'][1:])} ] }}",
        "]",
        "output [",
        f"  {{ name: {_quote(out['name'])} data_type: {_DTYPES[out.get('dtype', 'float32')]} "
        f"dims: [ {', '.join(str(d) for d in out['shape'][1:])} ] label_filename: \"labels.txt\" }}"
        + (f",\n  {{ name: {_quote(attention['name'])} data_type: {_DTYPES[attention.get('dtype', 'float32')]} "
           f"dims: [ {', '.join(str(d) for d in attention['shape'][1:])} ] }}" if attention else ""),
        "]",
        f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, preferred))} ] "
        f"max_queue_delay_microseconds: {QUEUE_DELAY_US} }}",
        f"instance_group [ {{ kind: KIND_{kind.upper()} count: {count} }} ]",
        f"parameters {{ key: {_quote(MANIFEST_PARAMETER)} value: {{ string_value: {_quote(compact)} }} }}",
    ]
    return "\n".join(lines) + "\n"


def write_model(repo: Path, artifact: Path, manifest: dict, backend: str = "onnxruntime", kind: str = "gpu",
                max_batch: int | None = None) -> Path:
    """``repo/<name>/``: config, labels, manifest and version 1 of one artifact; returns the model folder."""
    name = model_name(manifest["format"], manifest["precision"])
    folder = repo / name
    version = folder / "1"
    version.mkdir(parents=True)
    if manifest["format"] == "trt":
        shutil.copyfile(artifact, version / "model.plan")
    else:
        shutil.copyfile(artifact, version / "model.onnx")
        if backend == "python":
            shutil.copyfile(_MODEL_PY, version / "model.py")
    (folder / "labels.txt").write_text("".join(f"{c}\n" for c in manifest["classes"]), encoding="utf-8")
    (folder / "hac.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (folder / "config.pbtxt").write_text(config_text(manifest, name, backend, kind, max_batch=max_batch),
                                         encoding="utf-8")
    return folder


def check_options(backend: str | None, kind: str | None) -> tuple[str, str]:
    """The backend and instance kind (None: the defaults, onnxruntime on the GPU; python on the CPU)."""
    backend = backend or BACKENDS[0]
    kind = kind or ("cpu" if backend == "python" else "gpu")
    if backend not in BACKENDS:
        raise HacError(f"--triton-backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if kind not in KINDS:
        raise HacError(f"--triton-kind {kind!r}: choose {' or '.join(KINDS)}")
    if backend == "python" and kind != "cpu":
        raise HacError("--triton-backend python runs ONNX Runtime on the CPU: --triton-kind gpu does not apply")
    return backend, kind


def write_repository(out: Path, packed: list[tuple[Path, dict]], backend: str | None = None,
                     kind: str | None = None, max_batch: int | None = None) -> tuple[Path, list[str]]:
    """``out/triton/`` holding one model per ``(artifact, manifest)``, replaced whole (staged, then renamed)."""
    backend, kind = check_options(backend, kind)
    if not packed:
        raise HacError("no artifact passed parity: nothing to pack into a Triton repository")
    final = out / REPOSITORY
    work = Path(tempfile.mkdtemp(prefix=f".partial-{REPOSITORY}-", dir=out))
    try:
        names = []
        for artifact, manifest in packed:
            if backend == "python" and manifest["format"] != "onnx":
                continue  # the Python backend runs ONNX files on the CPU; an engine needs the TensorRT platform
            names.append(write_model(work, artifact, manifest, backend, kind, max_batch).name)
        old = out / f".{REPOSITORY}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(work, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final, names
