"""hac-train / hac-eval through their console entry: bad input is one line and exit 2 before any training;
a clip without a face is skipped and reported; hac-eval writes metrics, plots and explanations."""
import json
import shutil

import pytest

from conftest import count_lines, run_cli
from fixtures_video import write_blank_video, write_face_video
from test_layouts import SMALL, faces, make_ck  # noqa: F401  (fixture)

TINY_ARGS = ["--backbone", "resnet18", "--image-size", "64", "--k", "3", "--folds", "1", "--device", "cpu", "--quiet"]


def _one_line_error(rc, err, prog="hac-train"):
    assert rc == 2, err
    assert count_lines(err) == 1 and err.startswith(f"{prog}: error: ") and "Traceback" not in err, err
    return err


def test_missing_empty_unknown_data(tmp_path):
    err = _one_line_error(*run_cli("hac-train", tmp_path / "nope", "--out", tmp_path / "r", *TINY_ARGS)[::2])
    assert "data folder not found" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error(*run_cli("hac-train", tmp_path / "empty", "--out", tmp_path / "r", *TINY_ARGS)[::2])
    assert "empty" in err
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "a.txt").write_text("x")
    err = _one_line_error(*run_cli("hac-train", tmp_path / "loose", "--out", tmp_path / "r", *TINY_ARGS)[::2])
    assert "unknown layout" in err
    assert not (tmp_path / "r" / "last.pt").exists()


def test_unreadable_labels(tmp_path, faces):  # noqa: F811
    root = make_ck(tmp_path / "CK+", faces)
    bad = next((root / "Emotion").rglob("*_emotion.txt"))
    bad.write_bytes(b"\xff\xfe garbage")
    err = _one_line_error(*run_cli("hac-train", root, "--out", tmp_path / "r", *TINY_ARGS)[::2])
    assert str(bad) in err and "unreadable CK+ emotion label" in err


def test_class_with_no_samples(tmp_path, faces):  # noqa: F811
    root = tmp_path / "d"
    for i, who in enumerate(("astronaut", "obama", "biden")):
        write_face_video(root / "smile" / f"{i}.mp4", faces[who], n_frames=3, **SMALL)
    (root / "frown").mkdir()
    err = _one_line_error(*run_cli("hac-train", root, "--out", tmp_path / "r", *TINY_ARGS)[::2])
    assert "class 'frown' has no samples" in err


def test_bad_options_and_files(tmp_path, synth_set):
    err = _one_line_error(*run_cli("hac-train", synth_set, "--out", tmp_path / "r", *TINY_ARGS,
                                   "--pretrained", tmp_path / "none.pth")[::2])
    assert "pretrained weights file not found" in err
    five = [a if a != "1" else "5" for a in TINY_ARGS]
    err = _one_line_error(*run_cli("hac-train", synth_set, "--out", tmp_path / "r2", *five)[::2])
    assert "only 4 subjects for 5 fold(s)" in err and "--group-by clip" in err
    rc, _, err = run_cli("hac-train", synth_set, "--out", tmp_path / "r3", "--attention", "cross")
    assert rc == 2 and "Invalid value for '--attention'" in err
    (tmp_path / "x.pt").write_text("not a checkpoint")
    err = _one_line_error(*run_cli("hac-eval", tmp_path / "x.pt", synth_set, "--out", tmp_path / "e")[::2],
                          prog="hac-eval")
    assert "not a PyTorch checkpoint" in err


@pytest.mark.slow
def test_no_face_clip_is_skipped_and_counted(tmp_path, faces):  # noqa: F811
    root = tmp_path / "d"
    for label in ("smile", "frown"):
        for i, who in enumerate(("astronaut", "obama", "biden")):
            write_face_video(root / label / f"{who}.mp4", faces[who], n_frames=4, **SMALL)
    (root / "frown" / "blank.mp4").parent.mkdir(exist_ok=True)
    write_blank_video(root / "frown" / "blank.mp4")
    rc, out, err = run_cli("hac-train", root, "--out", tmp_path / "r", *TINY_ARGS, "--epochs", "1")
    assert rc == 0, err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["skipped"] == {"count": 1, "report": "skipped-clips.json"}
    rep = json.loads((tmp_path / "r" / "skipped-clips.json").read_text())
    assert rep["clips"] == [{"clip": "frown/blank.mp4", "label": "frown", "reason": rep["clips"][0]["reason"]}]
    assert "no face" in rep["clips"][0]["reason"]
    # every clip of a class without a face: an error before training, naming the report
    for f in (root / "smile").iterdir():
        f.unlink()
    write_blank_video(root / "smile" / "b1.mp4")
    write_blank_video(root / "smile" / "b2.mp4", n_frames=5)
    err = _one_line_error(*run_cli("hac-train", root, "--out", tmp_path / "r2", *TINY_ARGS)[::2])
    assert "class 'smile' has no samples (all 2 of its clips were skipped" in err


@pytest.mark.slow
def test_eval_writes_metrics_plots_and_explanations(easy_set, tmp_path):
    rc, out, err = run_cli("hac-train", easy_set, "--out", tmp_path / "r", *TINY_ARGS, "--epochs", "1")
    assert rc == 0, err
    # issue 16: training ends with its result and where everything is, --quiet included
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    result, where = out.strip().splitlines()[-2:]
    assert result.startswith(f"split: accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}") and \
        f"best epoch {m['best_epoch']}" in result, out
    assert where.startswith(f"checkpoint {tmp_path / 'r' / 'ckpt.pt'}") and "metrics.json" in where, out
    rc, out, err = run_cli("hac-eval", tmp_path / "r" / "ckpt.pt", easy_set, "--out", tmp_path / "e", "--explain", "2",
                           "--quiet")
    assert rc == 0, err
    assert out.startswith("accuracy ")
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n"] == 24 and m["classes"] == ["happiness", "surprise"] and len(m["confusion"]) == 2
    assert sum(map(sum, m["confusion"])) == 24 and 0.0 <= m["accuracy"] <= 1.0
    for f in ("plots/confusion.png", "plots/confusion_normalized.png", "plots/roc.png", "predictions.json"):
        assert (tmp_path / "e" / f).is_file(), f
    pngs = sorted(p.name for p in (tmp_path / "e" / "explain").glob("*.png"))
    assert len(pngs) == 4 and sum(p.endswith("-attention.png") for p in pngs) == 2
    assert sum(p.endswith("-cam.png") for p in pngs) == 2
    # labels the checkpoint does not know
    other = tmp_path / "other"
    shutil.copytree(easy_set.parent / "happiness", other / "joy")
    err = _one_line_error(*run_cli("hac-eval", tmp_path / "r" / "ckpt.pt", other, "--out", tmp_path / "e2")[::2],
                          prog="hac-eval")
    assert "not classes of" in err


@pytest.mark.slow
def test_a_truncated_video_is_one_warning_line_not_ffmpeg_chatter(tmp_path, faces):  # noqa: F811
    """Issue 13 #8: hac-train printed FFmpeg's raw lines for a truncated clip (hac-prepare and hac-run did not)."""
    root = tmp_path / "d"
    for label in ("smile", "frown"):
        for who in ("astronaut", "obama", "biden"):
            write_face_video(root / label / f"{who}.avi", faces[who], n_frames=12, **SMALL)
    cut = root / "frown" / "biden.avi"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    args = [a for a in TINY_ARGS if a != "--quiet"]
    rc, out, err = run_cli("hac-train", root, "--out", tmp_path / "r", *args, "--epochs", "1")
    assert rc == 0, err
    said = [line for line in err.splitlines() if "warning" in line]  # the rest of stderr is progress
    assert len(said) == 1 and said[0].startswith(f"hac-train: warning: {cut}: decoded "), err
    assert "the video is truncated or damaged" in err
    for chatter in ("[OPENCV", "FFMPEG", "[ WARN", "[mjpeg", "Packet corrupt", "note:"):
        assert chatter not in out and chatter not in err, (out, err)


@pytest.mark.slow
def test_synth_and_train_say_the_held_out_identity_consistently(tmp_path):
    """Issue 16: hac-synth said "obama (test)" while hac-train --folds 1 held out hopper, without saying so."""
    import csv

    rc, out, err = run_cli("hac-synth", "--out", tmp_path / "S", "--clips", "14", "--frames", "6", "--frame-size", "200")
    assert rc == 0, err
    rows = list(csv.DictReader(open(tmp_path / "S" / "manifest.csv")))
    test_ids = sorted({r["subject"] for r in rows if r["split"] == "test"})
    assert f"holds out {', '.join(test_ids)}: hac-train --protocol official uses it" in out, out
    args = [a for a in TINY_ARGS if a != "--quiet"]
    rc, out, err = run_cli("hac-train", tmp_path / "S", "--out", tmp_path / "r", *args, "--epochs", "1",
                           "--protocol", "official")
    assert rc == 0, err
    said = " ".join((out + err).split())
    assert f"(held out: {', '.join(test_ids)})" in said, said
