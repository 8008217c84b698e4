"""The artifact spec, one table read by every package (Ultralytics-like): formats, engines, precisions, runs.

* ``FORMATS``: what ``hac-export`` writes — name (``--format`` and the manifest's ``format``), file suffix,
  precisions it is written in, whether writing it needs a CUDA GPU.
* ``ENGINES``: what runs artifacts — the runner class (imported only when used), the devices, the Python
  package it needs and how to install it.
* ``RUNS``: which engine runs which format at which precision, and from which artifact: the ORT rows run
  each ONNX file as written; OpenVINO's BF16 runs the FP32 ONNX with a BF16 precision hint. The
  ``triton`` engine runs no file here: it sends batches to a server that holds the ``triton`` package.

``hac-export``'s planner, ``load_engine``, ``--engine auto``, the console scripts' choices and ``hac-bench``'s
rows all come from here; adding a format or an engine is a row here plus its writer / runner. Importing this
module imports neither torch nor ``hac_train`` (the runtime never does).
"""
from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  #: every precision an artifact or a run can have
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How a clip becomes model input, stored once in every checkpoint and manifest (``preprocess``): k faces
    sampled per clip (§3.1), each aligned by ``aligner`` to ``image_size`` px and normalised as
    ``(x/255 − mean) / std`` (ImageNet's, the backbone's pretraining)."""

    image_size: int = 224
    k: int = 5
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    aligner: str = "sequence"

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def input_shape(self) -> list:
        """The model input every artifact of it takes: ``["batch", k, 3, S, S]``."""
        return ["batch", self.k, 3, self.image_size, self.image_size]

    def to_dict(self) -> dict:
        """What files store (CONTRACTS.md: image_size, mean, std, k, aligner)."""
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std), "k": self.k,
                "aligner": self.aligner}

    @classmethod
    def from_dict(cls, doc, where: str = "preprocess") -> Preprocess:
        """Read a file's ``preprocess``; anything malformed is one line naming ``where``. Files written before
        ``aligner`` was recorded were aligned by ``sequence``."""
        from hac_runtime.errors import HacError

        try:
            pre = cls(image_size=doc["image_size"], k=doc["k"], mean=doc["mean"], std=doc["std"],
                      aligner=doc.get("aligner", "sequence"))
            ok = (type(pre.image_size) is int and pre.image_size > 0 and type(pre.k) is int and pre.k > 0
                  and len(pre.mean) == len(pre.std) == 3 and all(v > 0 for v in pre.std)
                  and isinstance(pre.aligner, str))
        except (KeyError, TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise HacError(f"{where}: malformed preprocess {doc!r} (needs image_size, k, 3 means, 3 stds, aligner)")
        return pre


@dataclass(frozen=True)
class Format:
    name: str  #: ``--format`` value and manifest ``format``
    suffix: str  #: artifact file suffix
    precisions: tuple  #: precisions the artifact is exported in
    export_needs_gpu: bool  #: writing it needs a CUDA GPU (and TensorRT)
    description: str
    packs: tuple = ()  #: a package of other formats' artifacts (a folder), not an artifact of its own


@dataclass(frozen=True)
class EngineSpec:
    name: str  #: ``--engine`` value
    runner: str  #: ``module:Class`` of its Engine, imported when used
    devices: tuple  #: devices it can run on
    package: str  #: the Python module it needs
    install: str  #: how to get it
    description: str
    cuda_graphs: bool = False  #: can capture and replay CUDA graphs per batch bucket (on a CUDA device)


@dataclass(frozen=True)
class Run:
    """``engine`` runs ``fmt`` artifacts exported in ``artifact_precision`` as ``precision``."""

    engine: str
    fmt: str
    precision: str
    artifact_precision: str
    default: tuple = ("cpu", "cuda")  #: machines where it is in ``hac-bench``'s default selection (``--full``: all)

    @property
    def native(self) -> bool:
        """The artifact's own run: its format's first engine at its own precision (judged as the artifact)."""
        return self.engine == native_engine(self.fmt) and self.precision == self.artifact_precision

    @property
    def key(self) -> str:
        """``engine/precision``: where the export records a run's parity (``parity.runs``)."""
        return f"{self.engine}/{self.precision}"

    def verdict(self, parity: dict | None) -> dict | None:
        """This run's record in an artifact's parity record (None: never judged)."""
        if self.native:
            return parity
        return ((parity or {}).get("runs") or {}).get(self.key)


def _table(rows):
    return {r.name: r for r in rows}


FORMATS: dict[str, Format] = _table([
    Format("onnx", ".onnx", ("fp32", "fp16", "int8"), False,
           "ONNX, dynamic batch: FP32; mixed FP16 (--fp16); static QDQ INT8 (--int8 --calib)"),
    Format("trt", ".engine", ("fp32", "fp16", "int8"), True,
           "TensorRT engine built from the ONNX of the same precision; one profile from --batch"),
    Format("pt2", ".pt2", ("fp32",), False, "torch.export ExportedProgram (FP32)"),
    Format("aoti", ".aoti.pt2", ("fp32", "fp16", "bf16"), False,
           "AOTInductor-compiled package, compiled for CUDA where available, else CPU: FP32 (TF32 off); mixed "
           "FP16 (--fp16) or BF16 (--bf16), the trunk in half and attention, GRU, FC, I/O in FP32"),
    Format("triton", "/", ("fp32", "fp16", "int8"), False,
           "Triton Inference Server model repository (triton/) of the ONNX files and engines that passed",
           packs=("onnx", "trt")),
])

ENGINES: dict[str, EngineSpec] = _table([
    EngineSpec("ort", "hac_runtime.engines.ort.runner:OrtEngine", ("cpu", "cuda"), "onnxruntime",
               "pip install -e '.[cpu]' (or '.[gpu]' for CUDA)", "ONNX Runtime"),
    EngineSpec("trt", "hac_runtime.engines.trt.runner:TrtEngine", ("cuda",), "tensorrt",
               "pip install -e '.[gpu,trt-cu12]' (or trt-cu13: the CUDA major of your torch) on a CUDA machine",
               "TensorRT", cuda_graphs=True),
    EngineSpec("torch", "hac_runtime.engines.torch.runner:TorchEngine", ("cpu", "cuda"), "torch",
               "pip install torch", "PyTorch (torch.export, AOTInductor)", cuda_graphs=True),
    EngineSpec("openvino", "hac_runtime.engines.openvino.runner:OpenVinoEngine", ("cpu",), "openvino",
               "pip install -e '.[openvino]'", "OpenVINO (CPU; optional)"),
    EngineSpec("triton", "hac_runtime.engines.triton.runner:TritonEngine", ("server",), "tritonclient",
               "pip install -e '.[triton]'",
               "a Triton Inference Server (--model grpc://HOST:PORT/MODEL or http://…); never chosen by auto"),
])

# ``default``: on a CPU, the runs that can win there (FP16 ONNX and AOTInductor run at FP32 speed on a CPU,
# benchmarks/engines.md: ``--full`` adds them); on a GPU every engine's own precisions.
RUNS: tuple[Run, ...] = (
    Run("ort", "onnx", "fp32", "fp32"), Run("ort", "onnx", "fp16", "fp16", default=("cuda",)),
    Run("ort", "onnx", "int8", "int8"),
    Run("openvino", "onnx", "fp32", "fp32", default=()), Run("openvino", "onnx", "bf16", "fp32"),
    Run("openvino", "onnx", "int8", "int8"),
    Run("torch", "pt2", "fp32", "fp32", default=()), Run("torch", "aoti", "fp32", "fp32", default=("cuda",)),
    # the GPU engine where TensorRT is not installed; on a CPU box BF16 AOTInductor is an option (--full)
    Run("torch", "aoti", "fp16", "fp16", default=("cuda",)), Run("torch", "aoti", "bf16", "bf16", default=("cuda",)),
    Run("trt", "trt", "fp32", "fp32"), Run("trt", "trt", "fp16", "fp16"),
    Run("trt", "trt", "int8", "int8"),
)


def artifact_engines() -> tuple:
    """The engines that run exported files here (a row of ``RUNS``): what ``hac-bench`` measures; not ``triton``."""
    return tuple(e for e in ENGINES if any(r.engine == e for r in RUNS))


def native_engine(fmt: str) -> str:
    """The engine an artifact of ``fmt`` runs on when none is named: the first that runs it."""
    return next(r.engine for r in RUNS if r.fmt == fmt)


def engines_for(fmt: str) -> list[str]:
    """Every engine that runs ``fmt``, native first."""
    out = []
    for r in RUNS:
        if r.fmt == fmt and r.engine not in out:
            out.append(r.engine)
    return out


def formats_for(engine: str) -> list[str]:
    """Every format ``engine`` runs, in ``RUNS`` order."""
    out = []
    for r in RUNS:
        if r.engine == engine and r.fmt not in out:
            out.append(r.fmt)
    return out


def runs_for(fmt: str, artifact_precision: str, engine: str | None = None) -> list[Run]:
    """The runs of an artifact (``engine`` filters)."""
    return [r for r in RUNS if r.fmt == fmt and r.artifact_precision == artifact_precision
            and (engine is None or r.engine == engine)]


def format_of_file(name: str) -> Format | None:
    """The format whose suffix ``name`` ends with (the longest suffix wins: ``.aoti.pt2`` over ``.pt2``)."""
    found = [f for f in FORMATS.values() if name.endswith(f.suffix)]
    return max(found, key=lambda f: len(f.suffix)) if found else None
