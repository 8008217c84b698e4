"""Outputs under faults: unwritable and full locations refused before the work, in words, exit 2; an existing
results file is never emptied by a run that could not start."""
import json

import pytest

from conftest import one_line, run, script
from fixtures_video import photo, write_face_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("v") / "talk.avi"
    write_face_video(p, photo("obama.jpg"), n_frames=12, fps=10.0)
    return p


def test_read_only_outputs_refused_before_work(read_only, video, artifact, tiny_ckpt, calib_dir):
    """Before: exit 1 'internal error', after all the work for hac-eval and hac-bench."""
    target = read_only / "x"
    cases = [
        (script("hac-prepare"), video, "--out", target),
        (script("hac-synth"), "--out", target, "--clips", "7"),
        (script("hac-train"), calib_dir, "--out", target, "--dataset", "folders", "--epochs", "1"),
        (script("hac-eval"), tiny_ckpt, calib_dir, "--out", target),
        (script("hac-export"), tiny_ckpt, "--out", target),
        (script("hac-run"), video, "--model", artifact, "--out", read_only / "r.jsonl"),
        (script("hac-run"), video, "--model", artifact, "--video-out", read_only / "a.mp4"),
        (script("hac-bench"), tiny_ckpt, "--engine", "ort", "--calib", calib_dir, "--out", target),
        (script("hac-bench"), tiny_ckpt, "--engine", "ort", "--calib", calib_dir, "--json", read_only / "b.json"),
    ]
    for cmd in cases:
        err = one_line(run(*cmd, timeout=120), 2, "read-only file system")
        assert "cannot write" in err, (cmd[0], err)
    assert list(read_only.iterdir()) == []


def test_existing_results_survive_a_run_that_cannot_start(video, artifact, tmp_path):
    old = tmp_path / "results.jsonl"
    old.write_text('{"old": 1}\n{"old": 2}\n')
    one_line(run(script("hac-run"), video, "--model", tmp_path / "missing.onnx", "--out", old), 2, "missing.onnx")
    bad_source = run(script("hac-run"), tmp_path / "nope.mp4", "--model", artifact, "--out", old)
    assert bad_source.returncode == 2 and "Traceback" not in bad_source.stderr
    assert bad_source.stderr.strip().splitlines()[-1].startswith("hac-run: error: no source could be used")
    assert old.read_text() == '{"old": 1}\n{"old": 2}\n'
    p = run(script("hac-run"), video, "--model", artifact, "--out", old)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in old.read_text().splitlines()]
    assert lines and all("label" in r for r in lines)  # replaced by the run that ran
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


@pytest.mark.slow
def test_full_disk_while_training_is_said_in_words(tmpfs, tmp_path):
    """Before: '[enforce fail at inline_container.cc:672] . unexpected pos …', exit 1."""
    assert run(script("hac-synth"), "--out", tmp_path / "S", "--clips", "14", "--frames", "6", "--quiet").returncode == 0
    p = run(script("hac-train"), tmp_path / "S", "--out", tmpfs / "run", "--dataset", "folders", "--backbone", "resnet18",
            "--image-size", "64", "--k", "3", "--epochs", "1", "--folds", "1", "--group-by", "clip", "--quiet",
            timeout=600)
    err = one_line(p, 2, "no space left on device")
    assert "inline_container" not in err
    assert not [f for f in (tmpfs / "run").rglob("*") if f.name.endswith(".tmp")], "a half-written file was left"


def test_annotated_video_on_a_full_disk_is_refused_not_left_unplayable(tmpfs, artifact, tmp_path):
    """Before: exit 0, 61 OpenCV warnings and an unplayable file under the final name."""
    big = tmp_path / "long.avi"
    write_face_video(big, photo("obama.jpg"), n_frames=150, fps=25.0)
    p = run(script("hac-run"), big, "--model", artifact, "--out", tmp_path / "r.jsonl",
            "--video-out", tmpfs / "annotated.avi", timeout=600)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "cannot write the annotated video (no space left on device)" in last, last
    assert "WARN" not in p.stderr and "Traceback" not in p.stderr
    assert list(tmpfs.iterdir()) == []  # nothing under the final name, no temporary left
    assert (tmp_path / "r.jsonl").read_text().strip()  # the results were kept


def test_flipped_byte_in_a_checkpoint_is_refused(tiny_ckpt, tmp_path):
    """Before: hac-ckpt/1 had no checksum and a damaged copy loaded."""
    data = bytearray(tiny_ckpt.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the weights
    bad = tmp_path / "damaged.pt"
    bad.write_bytes(bytes(data))
    one_line(run(script("hac-export"), bad, "--out", tmp_path / "o"), 2, "damaged.pt", "checksum")


def test_old_checkpoint_without_checksum_loads_with_a_note(tiny_ckpt, tmp_path):
    import warnings

    import torch

    from hac_train.checkpoint import load_checkpoint

    ckpt = torch.load(tiny_ckpt, map_location="cpu", weights_only=True)
    ckpt["format"] = "hac-ckpt/1"
    ckpt.pop("weights_sha256")
    torch.save(ckpt, tmp_path / "v1.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, loaded = load_checkpoint(tmp_path / "v1.pt")
    assert loaded["format"] == "hac-ckpt/1"
    assert any("no weights checksum" in str(w.message) for w in caught)
