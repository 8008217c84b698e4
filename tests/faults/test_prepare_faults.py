"""hac-prepare under faults: killed mid-run (SIGTERM, SIGKILL), symlink loops, FIFOs, devices."""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import one_line, run, script
from fixtures_proc import processes_with_env
from fixtures_video import photo, write_face_video

FACES = ("obama.jpg", "biden.jpg", "astronaut", "obama.jpg")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    paths = []
    for i, name in enumerate(FACES):
        p = d / f"v{i}.avi"
        write_face_video(p, photo(name), n_frames=60, fps=10.0)
        paths.append(p)
    return paths


def _clips_are_whole(out):
    """Every finished clip holds exactly the faces its marker counts, and its faces.jsonl a line per frame."""
    done = [d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")]
    for d in done:
        marker = json.loads((d / ".done.json").read_text())
        assert len(list(d.glob("*.png"))) == marker["faces"], d
        assert len((d / "faces.jsonl").read_text().splitlines()) == marker["frames"], d
    return done


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_parallel_prepare_leaves_no_orphans_and_resumes_whole(videos, tmp_path, sig):
    """Before: the workers outlived the parent (PPID 1) and kept writing; a rerun failed, a third one
    counted a 171-PNG clip whose marker said 472 as done."""
    out, tag = tmp_path / "O", uuid.uuid4().hex
    env = {**os.environ, "HAC_FAULT_TAG": tag}
    cmd = [script("hac-prepare"), *map(str, videos), "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(out.glob(".*.partial-*/**/*.png")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert any(out.glob(".*.partial-*/**/*.png")), "no worker started writing in time"
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
    deadline = time.monotonic() + 30  # the kernel kills the workers with their parent
    while processes_with_env("HAC_FAULT_TAG", tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_env("HAC_FAULT_TAG", tag) == [], "worker processes outlived hac-prepare"
    _clips_are_whole(out)  # whatever was committed before the kill is whole

    again = run(*cmd, env={"HAC_FAULT_TAG": tag})
    assert again.returncode == 0, again.stderr
    done = _clips_are_whole(out)
    assert {d.name.split(".face")[0] for d in done} == {"v0", "v1", "v2", "v3"}  # every source, whole
    assert not list(out.glob(".*partial*")), "a killed run's partial folders were left behind"
    third = run(*cmd)
    assert third.returncode == 0 and f"({len(done)} already done)" in third.stdout, third.stdout


def test_a_clip_missing_faces_is_redone_not_counted_done(videos, tmp_path):
    out = tmp_path / "O"
    assert run(script("hac-prepare"), videos[0], "--out", out, "--quiet").returncode == 0
    clip = next(d for d in out.iterdir() if d.is_dir())
    pngs = sorted(clip.glob("*.png"))
    for p in pngs[len(pngs) // 2:]:
        p.unlink()  # what a crash between file writes could leave
    again = run(script("hac-prepare"), videos[0], "--out", out, "--quiet")
    assert again.returncode == 0 and "already done" not in again.stdout
    assert len(list(clip.glob("*.png"))) == len(pngs)


def test_symlink_loops_do_not_hang(videos, tmp_path):
    t = tmp_path / "t"
    t.mkdir()
    (t / "v.avi").symlink_to(videos[0])
    (t / "a").symlink_to(".")
    (t / "b").symlink_to(".")
    p = run(script("hac-prepare"), t, "--out", tmp_path / "O", "--quiet", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "1 clip " in p.stdout


def test_fifo_in_an_image_list_and_as_an_input(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "face.png"), photo("obama.jpg"))
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "frames.txt").write_text("face.png\npipe.png\n")
    p = run(script("hac-prepare"), tmp_path / "frames.txt", "--out", tmp_path / "O", "--quiet", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "pipe.png" in p.stdout  # reported as unreadable, not waited on
    one_line(run(script("hac-prepare"), tmp_path / "pipe.png", "--out", tmp_path / "O2", timeout=60), 2,
             "pipe.png", "not a regular file or folder")
    one_line(run(script("hac-prepare"), "/dev/null", "--out", tmp_path / "O3", timeout=60), 2,
             "/dev/null", "not a regular file or folder")
