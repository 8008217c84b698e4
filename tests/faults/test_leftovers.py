"""What a kill or a broken file leaves behind: cleaned, said, never silently shifting anything."""
import json

import cv2
import pytest

from conftest import run, script
from fixtures_video import photo, write_blank_video, write_face_frames


def test_broken_link_and_folder_in_a_frame_folder_keep_frame_indices(tmp_path):
    """Before: skipped silently, and every later frame's index shifted."""
    frames = tmp_path / "seq"
    write_face_frames(frames, photo("obama.jpg"), n_frames=4, pattern="f{:02d}.png")
    (frames / "f01.png").unlink()
    (frames / "f01.png").symlink_to(tmp_path / "gone.png")  # a broken link
    (frames / "f02.png").unlink()
    (frames / "f02.png").mkdir()  # a folder with an image's name
    p = run(script("hac-prepare"), frames, "--out", tmp_path / "O")
    assert p.returncode == 0, p.stderr
    assert "skipped 2 unreadable image(s): f01.png, f02.png" in p.stderr + p.stdout
    clip = tmp_path / "O" / "seq"
    assert sorted(f.name for f in clip.glob("*.png")) == ["00000.png", "00003.png"]
    lines = [json.loads(x) for x in (clip / "faces.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 3]


def test_export_and_training_leftovers_are_removed(tiny_ckpt, tmp_path):
    out = tmp_path / "engines"
    out.mkdir()
    (out / ".partial-abc123-hac.onnx").write_bytes(b"half an onnx")  # what a killed export leaves
    p = run(script("hac-export"), tiny_ckpt, "--out", out, "--batch", "1:2:2")
    assert p.returncode == 0, p.stderr
    assert not list(out.glob(".partial-*"))


@pytest.mark.slow
def test_resume_without_last_pt_says_it_starts_over_and_cleans_temporaries(tmp_path):
    data = tmp_path / "S"
    assert run(script("hac-synth"), "--out", data, "--clips", "14", "--frames", "6", "--quiet").returncode == 0
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"format": "hac-run/1", "settings": {
        "data": str(data), "dataset": "folders", "backbone": "resnet18", "image_size": 64, "k": 3, "epochs": 1,
        "folds": 1, "recipe": None, "lr": None, "batch_size": None, "repeats": 1, "attention": "hybrid",
        "temporal": "gru", "dropout": None, "pretrained": None, "protocol": "kfold", "subset": None,
        "group_by": "clip", "cache": None, "aligner": "sequence", "detector": None, "seed": 0}}))
    (out / ".last.pt.x1y2.tmp").write_bytes(b"a killed write")
    p = run(script("hac-train"), data, "--out", out, "--resume", timeout=600)
    assert p.returncode == 0, p.stderr
    said = " ".join((p.stdout + p.stderr).split())  # rich wraps long lines
    assert "no last.pt (no epoch had finished): starting at epoch 1" in said
    assert not list(out.glob(".*.tmp")) and (out / "last.pt").is_file()


def test_a_class_without_usable_clips_names_a_file_that_exists(tmp_path):
    """Before: the line pointed at a skipped-clips.json that was never written."""
    data = tmp_path / "D"
    for label in ("a", "b"):
        write_blank_video(data / label / "blank.mp4")  # no face anywhere
    cv2.imwrite(str(tmp_path / "x.png"), photo("obama.jpg"))
    p = run(script("hac-train"), data, "--out", tmp_path / "run", "--dataset", "folders", "--image-size", "64",
            "--backbone", "resnet18", timeout=300)
    assert p.returncode == 2, p.stderr
    assert "skipped-clips.json" in p.stderr
    report = json.loads((tmp_path / "run" / "skipped-clips.json").read_text())
    assert report["count"] == 2 and {c["label"] for c in report["clips"]} == {"a", "b"}

