"""The plan an export command makes from its options, against the one format table (``hac_runtime.spec``).

Every wrong combination of options is refused here, before any work, with a
one-line reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hac_runtime import spec
from hac_runtime.errors import HacError

#: the export formats and their precisions: one table, the runtime's (``hac_runtime.spec``)
FORMATS = spec.FORMATS
PRECISIONS = tuple(p for p in spec.PRECISIONS if any(p in f.precisions for f in FORMATS.values()))
#: export order: a format another builds from comes first (TensorRT builds from the ONNX files); any
#: format the table gains is exported after these
ORDER = tuple(dict.fromkeys(("onnx", "pt2", "aoti", *FORMATS, "trt", "triton")))
DEFAULT_BATCH = (1, 8, 16)


@dataclass(frozen=True)
class ExportPlan:
    formats: tuple  #: in ``ORDER``
    precisions: dict  #: format → precisions to export
    batch: tuple  #: (min, opt, max)

    def artifacts(self):
        """(format, precision) pairs in export order (a package such as ``triton`` is made after them)."""
        return [(f, p) for f in self.formats if not FORMATS[f].packs for p in self.precisions[f]]

    @property
    def packages(self) -> tuple:
        """The formats that package the artifacts (``triton``)."""
        return tuple(f for f in self.formats if FORMATS[f].packs)


def parse_batch(text) -> tuple[int, int, int]:
    """``"MAX"``, ``"MIN:MAX"`` or ``"MIN:OPT:MAX"`` → (min, opt, max)."""
    if isinstance(text, (tuple, list)):
        parts = [str(p) for p in text]
    else:
        parts = str(text).split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise HacError(f"--batch {text!r}: expected MAX, MIN:MAX or MIN:OPT:MAX with positive integers")
    nums = [int(p) for p in parts]
    lo, opt, hi = (1, nums[0], nums[0]) if len(nums) == 1 else (nums[0], nums[1], nums[1]) if len(nums) == 2 else nums
    if not 1 <= lo <= opt <= hi:
        raise HacError(f"--batch {text!r}: need 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def parse_formats(text) -> tuple[str, ...]:
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise HacError("--format: name at least one of " + ", ".join(FORMATS))
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise HacError(f"--format: unknown {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return tuple(n for n in ORDER if n in names)


def plan_export(formats="onnx", fp16: bool = False, int8: bool = False, calib=None, batch=DEFAULT_BATCH,
                calib_method: str | None = None, workspace_gb: float | None = None,
                include_fp32: bool = False, bf16: bool = False, only=None) -> ExportPlan:
    """Check the options against the table and decide which artifacts to write.

    ``include_fp32``: every format also in FP32 (``hac-bench`` measures all); otherwise a format other than
    ONNX is written in FP32 only when no reduced precision is asked for. ``only``: (format, precision) pairs
    to keep of that (``hac-bench``: the runs it measures, not every format in every precision asked of any),
    with the ONNX files they are made from."""
    names = parse_formats(formats)
    lo, opt, hi = parse_batch(batch)
    reduced = [p for p, on in (("fp16", fp16), ("bf16", bf16), ("int8", int8)) if on]
    for p in reduced:
        if not any(p in FORMATS[n].precisions for n in names):
            takers = ", ".join(n for n, f in FORMATS.items() if p in f.precisions)
            raise HacError(f"--{p} applies to {takers}; --format {','.join(names)} exports FP32 only")
    if int8 and calib is None:
        raise HacError("--int8 needs --calib DATA: a folder of aligned face clips (hac-prepare output) to calibrate on")
    if calib_method is not None and not int8:
        raise HacError("--calib-method applies only with --int8")
    if workspace_gb is not None and "trt" not in names:
        raise HacError("--workspace applies only to --format trt")
    if workspace_gb is not None and workspace_gb <= 0:
        raise HacError(f"--workspace {workspace_gb}: must be a positive number of GiB")
    if calib is not None and not Path(calib).is_dir():
        raise HacError(f"{calib}: calibration data not found (expects a folder prepared by hac-prepare)")
    precisions = {}
    for n in names:
        allowed = FORMATS[n].precisions
        if n == "onnx":  # the FP32 ONNX is the source of the others
            precisions[n] = ("fp32", *[p for p in reduced if p in allowed])
        else:
            asked = tuple(p for p in reduced if p in allowed)
            precisions[n] = (("fp32",) if include_fp32 or not asked else ()) + asked
    if "triton" in names:  # a repository of the ONNX files (and engines): the ONNX of every asked precision
        precisions["onnx"] = tuple(p for p in PRECISIONS if p == "fp32" or p in precisions["triton"]
                                   or p in precisions.get("onnx", ()))
        names = tuple(n for n in ORDER if n in names or n == "onnx")
    if "trt" in names:  # TensorRT builds from the ONNX of the same precision: export it too
        precisions["onnx"] = tuple(p for p in PRECISIONS if p == "fp32" or p in precisions["trt"]
                                   or p in precisions.get("onnx", ()))
        names = tuple(n for n in ORDER if n in names or n == "onnx")
    if only is not None:
        only = {tuple(pair) for pair in only}
        built_from_onnx = {p for f, p in only if f in ("onnx", "trt", "triton")}
        precisions = {n: tuple(p for p in ps if (n, p) in only or (n == "onnx" and (p == "fp32" or p in built_from_onnx)))
                      for n, ps in precisions.items()}
    return ExportPlan(formats=names, precisions=precisions, batch=(lo, opt, hi))


def gpu_slug(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` → ``"h100-80gb-hbm3"`` (engine file names)."""
    name = re.sub(r"^(nvidia|geforce|tesla|quadro)\s+", "", name.strip().lower())
    name = re.sub(r"^(geforce|tesla|quadro)\s+", "", name)
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "gpu"


def artifact_name(fmt: str, precision: str, batch_max: int | None = None, gpu: str | None = None) -> str:
    """CONTRACTS.md names: hac.onnx, hac.fp16.onnx, hac.int8.onnx, hac_b16_<gpu>_fp16.engine, hac.pt2, hac.aoti.pt2
    (and hac.fp16.aoti.pt2, hac.bf16.aoti.pt2)."""
    if fmt == "trt":
        return f"hac_b{batch_max}_{gpu_slug(gpu or 'gpu')}_{precision}.engine"
    tag = "" if precision == "fp32" else f".{precision}"
    return f"hac{tag}{FORMATS[fmt].suffix}"
