"""Tiny checkpoints (untrained and trained on real photos), calibration clips, and their exports, once per session."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hac_export.api import export
from hac_runtime.clips import normalize
from hac_runtime.prepare import prepare
from hac_runtime.spec import Preprocess
from hac_train.checkpoint import save_checkpoint
from hac_train.model import HACConfig, HACNet
from hac_train.synth import asset_photos

SIZE, K = 64, 3
CLASSES = ["astronaut", "biden", "hopper"]  # three people of hac_train/assets/faces (public domain photos)
BATCH = "1:4:8"


def _photos():
    return {p.stem: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in asset_photos() if p.stem in CLASSES}


def real_frames(rng: np.random.Generator, photo: np.ndarray, n: int, size: int = SIZE,
                crop=(0.85, 1.0)) -> np.ndarray:
    """``n`` frames of one real photo: random crops (a moving camera), brightness jitter, ``size`` px RGB."""
    h, w = photo.shape[:2]
    frames = []
    for _ in range(n):
        side = int(min(h, w) * rng.uniform(*crop))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        frame = cv2.resize(photo[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
        frames.append(np.clip(frame.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_clip_folders(root, clips_per_class: int, frames: int, seed: int):
    """``root/<class>/<clip>/NNNNN.png`` aligned by the real hac-prepare (markers and faces.jsonl included)
    from frame sequences of three real face photos, so calibration and accuracy run on what users give."""
    rng = np.random.default_rng(seed)
    raw = Path(tempfile.mkdtemp(prefix="frames-"))
    try:
        for label, photo in _photos().items():
            folders = []
            for c in range(clips_per_class):
                folder = raw / label / f"clip{c:02d}"
                folder.mkdir(parents=True)
                for i, frame in enumerate(real_frames(rng, photo, frames, size=192)):
                    cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                folders.append(folder)
            summary = prepare(folders, root / label, size=SIZE, workers=1, progress=False)
            short = [c.name for c in summary.clips if c.faces < frames]
            assert not short, f"hac-prepare missed faces of {label}: {short}"
    finally:
        shutil.rmtree(raw, ignore_errors=True)
    return root


def train_tiny(clips_root, steps: int = 12, seed: int = 0) -> HACNet:
    """resnet18 at 64 px, k=3, 3 classes, trained a few steps on aligned clips of three real people."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pre = Preprocess(SIZE, K)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=len(CLASSES), k=K))
    faces = [np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                       for p in sorted((Path(clips_root) / c).rglob("*.png"))]) for c in CLASSES]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def batch(n_per_class):
        xs, ys = [], []
        for label, stack in enumerate(faces):
            for _ in range(n_per_class):
                frames = stack[rng.choice(len(stack), K, replace=False)].astype(np.float32)
                frames = np.clip(frames * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
                xs.append(normalize(frames, pre.mean, pre.std))
                ys.append(label)
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys)

    model.train()
    for _ in range(steps):
        x, y = batch(2)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Batch-norm statistics of the final weights (a few steps of momentum would leave them stale).
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for _ in range(4):
            model(batch(4)[0])
    return model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=len(CLASSES), k=K)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt.pt", model, CLASSES, Preprocess(SIZE, K))


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    return write_clip_folders(tmp_path_factory.mktemp("calib"), clips_per_class=8, frames=5, seed=1)


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory):
    model = train_tiny(write_clip_folders(tmp_path_factory.mktemp("train"), clips_per_class=3, frames=5, seed=0))
    return save_checkpoint(tmp_path_factory.mktemp("trained") / "ckpt.pt", model, CLASSES,
                           Preprocess(SIZE, K), train={"steps": 12}, metrics={})


@pytest.fixture(scope="session")
def untrained_export(tiny_ckpt, tmp_path_factory):
    """ONNX FP32 + FP16 and the .pt2 ExportedProgram of the untrained model (random inputs)."""
    return export(tiny_ckpt, formats="onnx,pt2", fp16=True, batch=BATCH, out=tmp_path_factory.mktemp("out_untrained"),
                  verbose=False)


@pytest.fixture(scope="session")
def trained_export(trained_ckpt, calib_dir, tmp_path_factory):
    """ONNX FP32 + FP16 + INT8 of the trained model, calibrated and checked on real clips."""
    return export(trained_ckpt, formats="onnx", fp16=True, int8=True, calib=calib_dir, batch=BATCH,
                  out=tmp_path_factory.mktemp("out_trained"), verbose=False)
