"""Face warping and normalisation in torch (the GPU path) against the OpenCV/NumPy path, on real photos."""
import numpy as np
import pytest
import torch

from hac_runtime.clips import normalize
from hac_runtime.faces import make_aligner
from hac_runtime.pipeline.gpu import TorchFaceWarper, normalize_torch


@pytest.mark.parametrize("aligner", ["template", "sequence"])
def test_torch_warp_matches_opencv(face_video, predictor, hog, aligner):
    import cv2

    from hac_runtime.media import open_source

    path, _ = face_video
    cpu, dev = make_aligner(aligner, 112), make_aligner(aligner, 112)
    warper = TorchFaceWarper(112, "cpu")
    n = 0
    for _, bgr in open_source(path):
        box = hog.detect(bgr)[0]
        lm = predictor.predict(bgr, box)
        ref = cv2.cvtColor(cpu.align(bgr, lm), cv2.COLOR_BGR2RGB)
        got = warper.warp(warper.upload(bgr), dev.matrix(lm)).numpy()
        diff = np.abs(ref.astype(int) - got.astype(int))
        assert got.shape == ref.shape and got.dtype == np.uint8
        assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 3, (diff.mean(), diff.max())
        n += 1
    assert n == 16


def test_torch_warp_downscales_like_opencv(astronaut, predictor, hog):
    """A big face into a small crop (scale < 0.5): both paths area-filter first and stay close to an
    ideal crop (warped at 8× the size, then area-averaged), with pixel centres where they belong."""
    import cv2

    box = hog.detect(astronaut)[0]
    lm = predictor.predict(astronaut, box)
    a = make_aligner("template", 32)
    m = a.matrix(lm)
    assert np.sqrt(abs(np.linalg.det(m[:, :2]))) < 0.5
    ref = cv2.cvtColor(a.align(astronaut, lm), cv2.COLOR_BGR2RGB).astype(int)
    w = TorchFaceWarper(32, "cpu")
    got = w.warp(w.upload(astronaut), m).numpy().astype(int)
    up = np.array([[8, 0, 3.5], [0, 8, 3.5], [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
    big = cv2.warpAffine(astronaut, up[:2], (256, 256), flags=cv2.INTER_LINEAR)
    ideal = cv2.cvtColor(cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB).astype(int)
    assert np.abs(ref - ideal).mean() < 6
    assert np.abs(got - ideal).mean() < 6
    assert np.abs(ref - got).mean() < 4


def test_normalize_torch_equals_numpy():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    np.testing.assert_allclose(normalize_torch(torch.from_numpy(faces), mean, std).numpy(),
                               normalize(faces, mean, std), rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
def test_pipeline_on_gpu_keeps_faces_on_device(tmp_path):
    """On a CUDA machine: the torch engine on cuda, faces warped on the GPU, same labels as the CPU path."""
    from fixtures_video import photo, write_face_video
    from hac_export.api import export
    from hac_runtime.pipeline import Pipeline
    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import save_checkpoint
    from hac_train.model import HACConfig, HACNet

    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=3, k=3)).eval()
    save_checkpoint(tmp_path / "ckpt.pt", model, ["a", "b", "c"], Preprocess(64, k=3))
    export(tmp_path / "ckpt.pt", formats="pt2", batch="1:4:8", out=tmp_path, verbose=False)
    video = tmp_path / "v.mp4"
    write_face_video(video, photo("obama.jpg"), n_frames=20)
    with Pipeline(tmp_path / "hac.pt2", engine="torch", device="cuda") as gpu:
        assert gpu.gpu_preprocess
        on_gpu = list(gpu.run([video]))
    with Pipeline(tmp_path / "hac.pt2", engine="torch", device="cpu") as cpu:
        on_cpu = list(cpu.run([video]))
    assert [r["label"] for r in on_gpu] == [r["label"] for r in on_cpu] and on_gpu
    for a, b in zip(on_gpu, on_cpu):
        for c in a["probs"]:
            assert abs(a["probs"][c] - b["probs"][c]) < 2e-2
