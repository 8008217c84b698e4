"""INT8: ONNX Runtime static quantisation to QDQ, calibrated on real aligned clips (``--calib``).

Per-channel symmetric INT8 weights; activations U8 (asymmetric, ONNX Runtime's
fastest CPU form, INT32 biases) or S8 symmetric with float biases (zero point 0,
what TensorRT's explicit quantisation accepts — ``activations="s8"``, chosen
automatically when a TensorRT engine is built from it; benchmarks/export.md). Only the ResNet trunk is quantised: the
attention (eq. 2–6), the GRU and the FC stay in float (``nodes_to_exclude``).

Calibration data is a folder prepared by ``hac-prepare``: every folder under it
that holds aligned ``NNNNN.png`` faces and hac-prepare's done-marker is a clip
(folders of PNGs without the marker are refused). Where a clip sits under a
folder named like a class (``DATA/<class>/<clip>/``) it also gets a label, used
to report the accuracy change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hac_export.onnx import quiet
from hac_runtime.clips import clip_folders, load_aligned_clip
from hac_runtime.errors import HacError, HacFailure, one_line
from hac_runtime.spec import Preprocess

CALIB_METHODS = ("minmax", "entropy", "percentile", "distribution")
ACTIVATIONS = ("u8", "s8")
MAX_CALIB_CLIPS = 256


@dataclass
class ClipSet:
    """Clips loaded for calibration and parity: ``x (N, k, 3, S, S)``, labels (-1 = unknown), folders."""

    x: np.ndarray
    labels: np.ndarray
    folders: list
    root: Path

    @property
    def labelled(self) -> int:
        return int((self.labels >= 0).sum())


def find_clips(root) -> list[Path]:
    """Every clip folder under ``root`` (``root`` included) that hac-prepare finished, sorted.

    A clip is a folder of aligned ``NNNNN.png`` faces with hac-prepare's done-marker. Folders of PNGs
    without it (any pictures, faces or not, or a half-written clip) are refused: calibrating on what
    was never aligned as the runtime aligns would quantise for the wrong inputs, silently."""
    from hac_runtime.prepare import finished_marker

    root = Path(root)
    if not root.is_dir():
        raise HacError(f"{root}: calibration data not found (expects a folder prepared by hac-prepare)")
    folders = clip_folders(root)
    if not folders:
        raise HacError(f"{root}: no aligned faces found (expects clip folders of NNNNN.png written by hac-prepare)")
    unprepared = sorted(f for f in folders if finished_marker(f) is None)
    if unprepared:
        raise HacError(f"{root}: {len(unprepared)} of {len(folders)} folders of PNGs are not hac-prepare clips "
                       f"(no done-marker, or faces missing), e.g. {unprepared[0].relative_to(root).as_posix() or '.'}; "
                       "align the frames first: hac-prepare FRAMES --out DIR")
    return folders


def load_clips(root, preprocess: Preprocess, classes, max_clips: int = MAX_CALIB_CLIPS, progress=None) -> ClipSet:
    """Load up to ``max_clips`` clips (evenly spread) as model input, with labels where the folder names a class."""
    root = Path(root)
    folders = find_clips(root)
    if len(folders) > max_clips:
        folders = [folders[i] for i in np.linspace(0, len(folders) - 1, max_clips).round().astype(int)]
    index = {c: i for i, c in enumerate(classes)}
    xs, labels = [], []
    for folder in folders:
        xs.append(load_aligned_clip(folder, preprocess))  # deterministic segment centres (§3.1)
        rel = folder.relative_to(root).parts
        labels.append(index.get(rel[0], -1) if len(rel) >= 2 else -1)
        if progress is not None:
            progress()
    return ClipSet(np.stack(xs).astype(np.float32), np.asarray(labels), folders, root)


class ClipReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a ClipSet, one clip per run by default: ORT keeps
    every activation of a run alive for the range reducers it adds, so eight clips per run peaked at 10.2 GB
    for the ResNet50 model (one clip: 2.5 GB and 2.3× faster; the same ranges, as min/max merge across runs)."""

    def __init__(self, input_name: str, clips: np.ndarray, batch: int = 1):
        self.input_name, self.clips, self.batch, self.pos = input_name, clips, batch, 0

    def get_next(self):
        if self.pos >= len(self.clips):
            return None
        chunk = self.clips[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return {self.input_name: chunk}

    def rewind(self):
        self.pos = 0


def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI (AVX-512 VNNI, AVX-VNNI or AMX): without it, ONNX Runtime's u8×s8 kernels
    (vpmaddubsw) saturate on 8-bit weights — ORT's quantization guide: use 7-bit weights (``reduce_range``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: nothing to read; the usual 8-bit weights
    flags = set(text.split("flags", 1)[-1].split("\n", 1)[0].split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def quantize_int8(src, dst, clips: np.ndarray, exclude: list[str], method: str = "minmax",
                  activations: str = "u8", input_name: str = "clips") -> dict:
    """Write the QDQ INT8 model of ``src`` (FP32 ONNX) to ``dst``, calibrated on ``clips``; return the settings."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise HacError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIB_METHODS)}")
    if activations not in ACTIVATIONS:
        raise HacError(f"unknown INT8 activation type {activations!r}; choose one of {', '.join(ACTIVATIONS)}")
    if len(clips) == 0:
        raise HacError("no calibration clips")
    symmetric = activations == "s8"
    reduce_range = not symmetric and not cpu_has_vnni()  # u8 activations run by ORT on this CPU
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile, "distribution": CalibrationMethod.Distribution}[method]
    try:
        with quiet():
            quantize_static(
                str(src), str(dst), ClipReader(input_name, clips),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude), calibrate_method=calibrate,
                # TensorRT takes float biases (it folds them itself); ONNX Runtime fuses INT32 ones.
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": not symmetric},
            )
    except HacError:
        raise
    except Exception as e:  # noqa: BLE001 - report ORT's failure in one line
        first = one_line(e)[:200]
        raise HacFailure(f"INT8 quantisation failed: {type(e).__name__}: {first}") from e
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "calibration": method,
            "calibration_clips": int(len(clips)),
            "weights": "s8 per-channel symmetric", "reduce_range": reduce_range,  # 7-bit weights: no VNNI here
            "activations": "s8 symmetric" if symmetric else "u8 asymmetric",
            "bias": "float" if symmetric else "int32",
            "float_blocks": ["self_attention", "spatial_attention", "gru", "fc", "io"],
            "excluded_nodes": len(exclude)}
