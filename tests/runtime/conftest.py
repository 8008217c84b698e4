"""Shared runtime fixtures: real face photos, real videos written from them, and the dlib models loaded once."""
import numpy as np
import pytest
import torch

from fixtures_video import DATA, astronaut_bgr, photo, write_face_frames, write_face_video

PHOTOS = ("astronaut", "biden.jpg", "obama.jpg", "obama_rgba.png")
TINY_CLASSES = ["anger", "happiness", "surprise"]


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut photo, BGR uint8 512×512."""
    return astronaut_bgr()


@pytest.fixture(scope="session")
def photos():
    """Name → BGR image of every real face photo (astronaut and ``tests/data``)."""
    return {name: photo(name) for name in PHOTOS}


@pytest.fixture(scope="session")
def data_dir():
    return DATA


@pytest.fixture(scope="session")
def predictor():
    from hac_runtime.faces import LandmarkPredictor

    return LandmarkPredictor()


@pytest.fixture(scope="session")
def hog():
    from hac_runtime.faces import make_detector

    return make_detector("hog")


@pytest.fixture(scope="session")
def face_video(tmp_path_factory, astronaut):
    """A 16-frame 640×480 mp4 of the astronaut moving (shift, rotation ±10°, scale ±15 %, brightness ±35 %).

    Returns ``(path, matrices)``: ``matrices[i]`` maps photo pixels to frame ``i`` pixels.
    """
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    mats = write_face_video(path, astronaut, n_frames=16)
    return path, mats


@pytest.fixture(scope="session")
def face_frames_dir(tmp_path_factory, photos):
    """A CK+-style frame folder (8 PNGs) of Obama moving; returns ``(folder, matrices)``."""
    folder = tmp_path_factory.mktemp("frames") / "obama_seq"
    mats = write_face_frames(folder, photos["obama.jpg"], n_frames=8)
    return folder, mats


@pytest.fixture(scope="session")
def photo_landmarks(photos, hog, predictor):
    """Name → 68 landmarks of the photo itself (HOG box): the reference moved by the video matrices."""
    out = {}
    for name, img in photos.items():
        boxes = hog.detect(img)
        assert boxes, f"no face found in {name}"
        out[name] = predictor.predict(img, boxes[0]).astype(np.float64)
    return out


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """A tiny HAC model (resnet18, k=3, 64 px) exported to ONNX and torch.export."""
    from hac_export.api import export
    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import save_checkpoint
    from hac_train.model import HACConfig, HACNet

    out = tmp_path_factory.mktemp("engines")
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=3, k=3)).eval()
    for p in (model.self_attention.theta.weight, model.spatial_attention.conv.weight):
        torch.nn.init.normal_(p, std=0.05)
    save_checkpoint(out / "ckpt.pt", model, TINY_CLASSES, Preprocess(64, k=3))
    export(out / "ckpt.pt", formats="onnx,pt2", batch="1:4:8", out=out, verbose=False)
    return out
