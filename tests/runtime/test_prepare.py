"""hac-prepare on real videos, frame folders and photos: outputs, gaps, resume, parallel, names, bad input."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fixtures_video import render_frames, write_blank_video, write_face_frames, write_face_video
from hac_runtime.cli import prepare_main
from hac_runtime.clips import load_aligned_clip
from hac_runtime.errors import HacError
from hac_runtime.faces import FaceProcessor
from hac_runtime.prepare import MARKER, auto_workers, clip_names, estimated_frames, prepare, prepare_clip
from hac_runtime.spec import Preprocess


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def pngs(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        prepare_main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut, photos):
    """A video with a faceless stretch in the middle, a frame folder and a still photo."""
    d = tmp_path_factory.mktemp("inputs")
    frames = [f for f, _ in render_frames(astronaut, 6, motion=("shift", "brightness"))]
    blank = np.full_like(frames[0], 60)
    writer = cv2.VideoWriter(str(d / "talk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for f in frames[:3] + [blank, blank] + frames[3:]:
        writer.write(f)
    writer.release()
    write_face_frames(d / "S005_001", photos["obama.jpg"], n_frames=4)
    cv2.imwrite(str(d / "biden.png"), photos["biden.jpg"])
    return d


def test_prepare_writes_faces_and_jsonl_per_contract(inputs, tmp_path):
    out = tmp_path / "out"
    # largest: one face per source (the astronaut's mission patch, a false detection, is not a clip of its own)
    s = prepare([inputs / "talk.avi", inputs / "S005_001", inputs / "biden.png"], out, size=112, progress=False,
                faces="largest")
    assert [c.name for c in s.clips] == ["talk", "S005_001", "biden"]
    assert (s.frames, s.faces, s.no_face, len(s.clips), s.failed) == (8 + 4 + 1, 6 + 4 + 1, 2, 3, [])
    # frames without a face leave a gap: indices are the source's, never shifted
    assert pngs(out / "talk") == ["00000.png", "00001.png", "00002.png", "00005.png", "00006.png", "00007.png"]
    assert pngs(out / "S005_001") == [f"{i:05d}.png" for i in range(4)] and pngs(out / "biden") == ["00000.png"]
    face = cv2.imread(str(out / "talk" / "00005.png"))
    assert face.shape == (112, 112, 3)
    lines = read_jsonl(out / "faces.jsonl")
    assert len(lines) == 13
    for r in lines:  # frames of a folder or an image name the file they came from; faces carry their quality
        assert set(r) == ({"clip", "frame", "box", "landmarks", "ok"} | ({"file"} if r["clip"] != "talk" else set())
                          | ({"quality", "yaw"} if r["box"] else set()))
        assert r["box"] is None or (r["ok"] == (r["quality"] >= 0.2))
    assert [r["file"] for r in lines if r["clip"] == "S005_001"] == [f"frame{i:03d}.png" for i in range(4)]
    assert [r["file"] for r in lines if r["clip"] == "biden"] == ["biden.png"]
    talk = [r for r in lines if r["clip"] == "talk"]
    assert [r["frame"] for r in talk] == list(range(8))
    assert [r["ok"] for r in talk] == [True, True, True, False, False, True, True, True]
    for r in lines:
        if r["ok"]:
            assert len(r["box"]) == 4 and all(isinstance(v, int) for v in r["box"])
            assert np.asarray(r["landmarks"]).shape == (68, 2)
            x, y, w, h = r["box"]
            assert np.asarray(r["landmarks"])[30].tolist() > [x, y]  # the nose tip inside its box
        else:
            assert r["box"] is None and r["landmarks"] is None
    # the clip folders are what training and export calibration read
    pre = Preprocess(112, 5, mean=[0.5] * 3, std=[0.25] * 3)
    assert load_aligned_clip(out / "talk", pre).shape == (5, 3, 112, 112)
    assert "13 frames, 11 faces found, 2 frames without a face" in s.render()


def test_resume_skips_finished_clips_and_redoes_changed_ones(inputs, tmp_path):
    out = tmp_path / "out"
    srcs = [inputs / "S005_001", inputs / "biden.png"]
    prepare(srcs, out, size=64, progress=False)
    stamp = (out / "S005_001" / "00000.png").stat().st_mtime_ns
    (out / ".biden.partial").mkdir()                     # what an interrupted run leaves behind
    (out / ".biden.partial" / "00000.png").write_bytes(b"half")
    again = prepare(srcs, out, size=64, progress=False)
    assert again.skipped == 2 and (again.frames, again.faces) == (5, 5)
    assert (out / "S005_001" / "00000.png").stat().st_mtime_ns == stamp
    (out / "biden" / MARKER).unlink()                    # not finished: done again
    bigger = prepare(srcs, out, size=96, progress=False)  # other settings: done again, replaced
    assert bigger.skipped == 0
    assert cv2.imread(str(out / "S005_001" / "00000.png")).shape == (96, 96, 3)
    assert sorted(p.name for p in out.iterdir()) == ["S005_001", "biden", "faces.jsonl"]
    assert len(read_jsonl(out / "faces.jsonl")) == 5


@pytest.mark.slow
def test_parallel_gives_the_same_output_as_serial(inputs, tmp_path):
    srcs = [inputs / "talk.avi", inputs / "S005_001", inputs / "biden.png"]
    one = prepare(srcs, tmp_path / "one", size=64, workers=1, progress=False)
    two = prepare(srcs, tmp_path / "two", size=64, workers=2, progress=False)
    assert two.workers == 2 and one.workers == 1
    assert (tmp_path / "one" / "faces.jsonl").read_text() == (tmp_path / "two" / "faces.jsonl").read_text()
    for clip in ("talk", "S005_001", "biden"):
        assert pngs(tmp_path / "one" / clip) == pngs(tmp_path / "two" / clip)
        for name in pngs(tmp_path / "one" / clip):
            assert (tmp_path / "one" / clip / name).read_bytes() == (tmp_path / "two" / clip / name).read_bytes()


def test_worker_count_follows_the_work(inputs):
    assert [estimated_frames(inputs / n) for n in ("talk.avi", "S005_001", "biden.png")] == [8, 4, 1]
    assert auto_workers([inputs / "talk.avi", inputs / "S005_001", inputs / "biden.png"]) == 1  # not worth a process


def test_prepare_clip_for_a_training_cache(inputs, tmp_path):
    processor = FaceProcessor(aligner="template", size=64)
    a = prepare_clip(inputs / "S005_001", tmp_path / "cache" / "x", processor)
    assert (a.name, a.frames, a.faces, a.skipped) == ("x", 4, 4, False)
    b = prepare_clip(inputs / "S005_001", tmp_path / "cache" / "x", processor)
    assert b.skipped and (b.frames, b.faces) == (4, 4)
    with pytest.raises(HacError, match="no such file"):
        prepare_clip(inputs / "nope.mp4", tmp_path / "cache" / "y", processor)
    assert not (tmp_path / "cache" / "y").exists()


def test_clip_names_unique_and_stable(tmp_path):
    for rel in ("a/x/clip.mp4", "b/x/clip.mp4", "c/solo.mp4", "c/clip.avi", "c/clip.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"v")
    paths = [tmp_path / r for r in ("a/x/clip.mp4", "b/x/clip.mp4", "c/solo.mp4")]
    assert clip_names(paths) == ["a_x_clip", "b_x_clip", "solo"]
    assert clip_names(paths) == clip_names(paths)
    assert clip_names([tmp_path / "c/clip.avi", tmp_path / "c/clip.mp4"]) == ["clip", "clip-2"]
    # a source already prepared keeps its name; another source never takes it
    reserved = {"clip": str((tmp_path / "a/x/clip.mp4").resolve())}
    assert clip_names([tmp_path / "a/x/clip.mp4"], reserved) == ["clip"]
    assert clip_names([tmp_path / "b/x/clip.mp4"], reserved) == ["x_clip"]
    (tmp_path / "a b").mkdir()
    (tmp_path / "a b" / "é x.mp4").write_bytes(b"v")
    assert clip_names([tmp_path / "a b" / "é x.mp4"]) == ["x"]  # safe file names


def test_dataset_tree_is_searched(tmp_path, photos):
    root = tmp_path / "ck"
    write_face_frames(root / "S010" / "001", photos["obama.jpg"], n_frames=2)
    write_face_frames(root / "S011" / "001", photos["biden.jpg"], n_frames=2)
    write_blank_video(root / "S012" / "blank.mp4", n_frames=3)
    s = prepare([root], tmp_path / "out", size=64, progress=False)
    assert [c.name for c in s.clips] == ["S010_001", "S011_001", "blank"]
    assert (s.frames, s.faces) == (7, 4)  # a video without a face is fine: all its frames ok=false


def test_cli_success_bad_input_and_usage(inputs, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a video\n" * 20)
    code, out, err = run_cli([str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("hac-prepare: error: nothing could be used:") and "notes.txt" in err
    code, out, err = run_cli([str(tmp_path / "notes.txt"), str(inputs / "biden.png"), "--out", str(tmp_path / "o"),
                              "--size", "48"], capsys)
    assert code == 0 and "1 clip in" in out and "1 faces found" in out
    assert "hac-prepare: warning:" in err and "notes.txt" in err and "Traceback" not in err
    code, out, err = run_cli([str(tmp_path / "notes.txt"), str(inputs / "biden.png"), "--out", str(tmp_path / "o"),
                              "--size", "48", "-q"], capsys)
    assert code == 0 and err == "" and "(1 already done)" in out and "notes.txt" in out  # quiet: all in the summary
    code, _, err = run_cli([str(inputs / "biden.png"), "--out", str(tmp_path / "o"), "--detector", "mtcnn"], capsys)
    assert code == 2 and "mtcnn" in err
    code, _, err = run_cli(["--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Missing argument" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli([str(inputs / "biden.png"), "--out", str(tmp_path / "file")], capsys)
    assert code == 2


def test_a_truncated_video_is_prepared_with_a_warning(tmp_path, astronaut, capsys):
    full = tmp_path / "full.avi"
    write_face_video(full, astronaut, n_frames=10)
    (tmp_path / "cut.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, out, err = run_cli([str(tmp_path / "cut.avi"), "--out", str(tmp_path / "o"), "--size", "48",
                              "--faces", "largest"], capsys)
    assert code == 0 and "of 10 frames; the video is truncated or damaged" in err
    code, out, err = run_cli([str(tmp_path / "cut.avi"), "--out", str(tmp_path / "q"), "--size", "48", "-q"], capsys)
    assert code == 0 and "of 10 frames; the video is truncated or damaged" in out
    lines = read_jsonl(tmp_path / "o" / "faces.jsonl")
    assert 3 <= len(lines) < 10 and [r["frame"] for r in lines] == list(range(len(lines)))


def test_a_folder_of_separate_photos_is_one_clip_per_photo(tmp_path, photos, capsys):
    """Issue 16: a folder of unrelated photos became one clip. The rule (media.is_frame_sequence): names that
    are one prefix plus a number are frames of one clip; other names are photos, a clip each."""
    from hac_runtime.media import is_frame_sequence

    album = tmp_path / "album"
    album.mkdir()
    for name, photo in (("party", "obama.jpg"), ("beach", "biden.jpg"), ("office", "obama.jpg")):
        cv2.imwrite(str(album / f"{name}.jpg"), photos[photo])
    s = prepare([album], tmp_path / "out", size=64, progress=False)
    assert sorted(c.name for c in s.clips) == ["beach", "office", "party"]
    assert all(c.faces == 1 for c in s.clips)
    assert [r["file"] for r in read_jsonl(tmp_path / "out" / "beach" / "faces.jsonl")] == ["beach.jpg"]
    # a dataset tree's frame folders stay clips, and a caller that knows its clips can say so
    assert is_frame_sequence([Path("S005_001_00000001.png"), Path("S005_001_00000002.png")])
    assert is_frame_sequence([Path("000.jpeg"), Path("001.jpeg"), Path("010.jpeg")])
    assert not is_frame_sequence([Path("img1.png"), Path("frame2.png")])
    assert not is_frame_sequence([Path("IMG_1234.JPG"), Path("IMG_1240.JPG")])  # a camera's photos
    assert not is_frame_sequence([Path("DSC_0001.jpg"), Path("DSC_0002.jpg")])
    s = prepare([album], tmp_path / "one", size=64, progress=False, folders_are_clips=True)
    assert [c.name for c in s.clips] == ["album"] and s.clips[0].faces == 3


def test_a_frame_folder_with_a_stray_image_is_said(tmp_path, photos, capsys):
    """A sequence folder with one other image (a cover) is read as photos, one clip each, by the rule above;
    that is said in one line naming the stray image, on the console and in the summary of a quiet run. An
    album whose names share no one numbered prefix is not."""
    from hac_runtime.media import stray_images

    seq = tmp_path / "S005" / "001"
    write_face_frames(seq, photos["obama.jpg"], n_frames=5, pattern="S005_001_{:08d}.png", size=(320, 240))
    cv2.imwrite(str(seq / "cover.jpg"), photos["biden.jpg"])
    code, out, err = run_cli([str(tmp_path / "S005"), "--out", str(tmp_path / "o"), "--size", "48"], capsys)
    line = (f"{seq}: read as 6 separate photos, not one clip of frames: 5 are numbered frames like "
            "S005_001_00000000.png, 1 is not (cover.jpg); move it out to read the frames as one clip")
    assert code == 0 and f"hac-prepare: warning: {line}" in err.replace("\n", " ")
    code, out, err = run_cli([str(tmp_path / "S005"), "--out", str(tmp_path / "q"), "--size", "48", "-q"], capsys)
    assert code == 0 and line in out
    assert stray_images(sorted(seq.iterdir())) == [seq / "cover.jpg"]
    album = [Path("beach.jpg")] + [Path(f"party{i}.jpg") for i in range(1, 5)]
    assert stray_images(album) == []  # a small album: four numbered photos are no frame sequence to hint at
    frames = [Path(f"f{i}.png") for i in range(5)]
    assert stray_images(frames + [Path("a.jpg")]) == [Path("a.jpg")]
    assert stray_images(frames + [Path("a.jpg"), Path("b.jpg")]) == []  # a quarter or more are not frames
    assert stray_images([Path(f"IMG_{i}.JPG") for i in range(6)] + [Path("x.jpg")]) == []  # a camera's photos
    seq.joinpath("cover.jpg").unlink()
    code, out, err = run_cli([str(tmp_path / "S005"), "--out", str(tmp_path / "r"), "--size", "48"], capsys)
    assert code == 0 and "separate photos" not in err and "1 clip" in out


# ---- every face its own clip (issue 16) ----------------------------------------------------------------------------
def two_people_video(path, photos, n_frames=12):
    """Biden and Obama side by side on one 960x480 canvas, moving (each photo's own motion)."""
    left = render_frames(photos["biden.jpg"], n_frames, size=(480, 480), motion=("shift", "brightness"))
    right = render_frames(photos["obama.jpg"], n_frames, size=(480, 480), motion=("shift", "rotate"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (960, 480))
    for (a, _), (b, _) in zip(left, right):
        writer.write(np.hstack([a, b]))
    writer.release()


def test_every_face_of_a_group_photo_is_its_own_clip(tmp_path, capsys):
    from fixtures_video import GROUP, group_photo

    img, truth = group_photo()
    cv2.imwrite(str(tmp_path / "group.jpg"), img)
    code, out, err = run_cli([str(tmp_path / "group.jpg"), "--out", str(tmp_path / "o"), "--image-size", "64", "-q"], capsys)
    assert code == 0, err
    names = [f"group.face{i}" for i in range(len(GROUP))]
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir()) == names
    lines = read_jsonl(tmp_path / "o" / "faces.jsonl")
    assert [r["clip"] for r in lines] == names and all(r["ok"] and r["file"] == "group.jpg" for r in lines)
    xs = [r["box"][0] for r in lines]
    assert xs == sorted(xs)  # left to right, as the photo is read
    for r, t in zip(lines, truth):
        assert abs(r["box"][0] - t[0]) < 0.3 * t[2], (r["box"], t)
    assert all(pngs(tmp_path / "o" / n) == ["00000.png"] for n in names)
    assert f"{len(GROUP)} clips of 1 source" in out
    code, out, _ = run_cli([str(tmp_path / "group.jpg"), "--out", str(tmp_path / "o"), "--size", "64", "-q"], capsys)
    assert code == 0 and f"({len(GROUP)} already done)" in out
    # one face per source instead: the group's clips are replaced by one
    code, out, _ = run_cli([str(tmp_path / "group.jpg"), "--out", str(tmp_path / "o"), "--size", "64", "-q",
                            "--faces", "largest"], capsys)
    assert code == 0 and sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir()) == ["group"]
    assert [r["clip"] for r in read_jsonl(tmp_path / "o" / "faces.jsonl")] == ["group"]


def test_two_people_in_a_video_become_two_clips_each_following_its_face(tmp_path, photos):
    two_people_video(tmp_path / "two.avi", photos)
    s = prepare([tmp_path / "two.avi"], tmp_path / "o", size=64, progress=False)
    assert [c.name for c in s.clips] == ["two.face0", "two.face1"]
    assert all(c.frames == 12 and c.faces >= 10 for c in s.clips), s.clips
    lines = read_jsonl(tmp_path / "o" / "faces.jsonl")
    for clip, side in (("two.face0", "left"), ("two.face1", "right")):
        boxes = [r["box"] for r in lines if r["clip"] == clip and r["ok"]]
        centres = [x + w / 2 for x, _, w, _ in boxes]
        assert all((c < 480) == (side == "left") for c in centres), (clip, centres)
    assert (s.frames, s.faces) == (12, sum(c.faces for c in s.clips))
    again = prepare([tmp_path / "two.avi"], tmp_path / "o", size=64, progress=False)
    assert again.skipped == 2
    (tmp_path / "o" / "two.face1" / MARKER).unlink()  # one clip of the group unfinished: the source is redone
    redo = prepare([tmp_path / "two.avi"], tmp_path / "o", size=64, progress=False)
    assert redo.skipped == 0 and [c.name for c in redo.clips] == ["two.face0", "two.face1"]


def test_a_turned_head_is_listed_with_its_quality_and_no_crop(tmp_path):
    from skimage import data

    cv2.imwrite(str(tmp_path / "camera.png"), data.camera())
    s = prepare([tmp_path / "camera.png"], tmp_path / "o", size=64, progress=False, detector="cnn")
    assert [(c.name, c.frames, c.faces) for c in s.clips] == [("camera", 1, 0)]
    (line,) = read_jsonl(tmp_path / "o" / "faces.jsonl")
    assert line["ok"] is False and line["quality"] < 0.2 and len(line["landmarks"]) == 68 and line["box"]
    assert pngs(tmp_path / "o" / "camera") == []


def test_new_face_score_is_a_setting_and_said_when_it_keeps_every_face_out(face_video, tmp_path, capsys):
    """--new-face-score above every score: no face, said in one line; it is one of the clip's settings, so
    the default redoes the clip (and finds the face on every frame)."""
    video, _ = face_video
    out = tmp_path / "o"
    code, stdout, err = run_cli([str(video), "--out", str(out), "--image-size", "64", "-q", "--new-face-score", "9"],
                                capsys)
    assert code == 0 and "0 faces found" in stdout
    assert "detection(s) scored under the new-face score 9 and started no face" in stdout + err
    assert json.loads((out / "astronaut" / ".done.json").read_text())["settings"]["new_face_score"] == 9.0
    code, stdout, _ = run_cli([str(video), "--out", str(out), "--image-size", "64", "-q"], capsys)
    assert code == 0 and "16 faces found" in stdout
    assert json.loads((out / "astronaut" / ".done.json").read_text())["settings"]["new_face_score"] == 0.5


def test_new_face_score_not_a_number_is_bad_usage(face_video, tmp_path, capsys):
    video, _ = face_video
    code, stdout, err = run_cli([str(video), "--out", str(tmp_path / "o"), "--new-face-score", "abc"], capsys)
    assert code == 2 and "'--new-face-score'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing started


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_a_face_on_one_frame_is_no_clip_and_said(tmp_path, astronaut, faces):
    """A face the next frame's detection does not find again (a false box, a face seen too briefly) is kept
    out of the training clips in both faces modes, and the source says why in one line."""
    frames = [f for f, _ in render_frames(astronaut, 1)] + [np.full((480, 640, 3), 90, np.uint8)] * 5
    folder = tmp_path / "glimpse"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), f)
    s = prepare([folder], tmp_path / "o", size=64, progress=False, faces=faces)
    (clip,) = s.clips
    assert (clip.name, clip.frames, clip.faces) == ("glimpse", 6, 0)
    assert any("1 face track(s) not found again by a later detection" in w for w in clip.warnings), clip.warnings
    assert pngs(tmp_path / "o" / "glimpse") == []
    assert not any(r["ok"] for r in read_jsonl(tmp_path / "o" / "faces.jsonl"))
    marker = json.loads((tmp_path / "o" / "glimpse" / MARKER).read_text())
    assert marker["settings"]["new_faces"] == "strong detection, found again on the next frame"
    # the same face on two frames is a clip of two faces
    cv2.imwrite(str(folder / "00001.png"), next(iter(render_frames(astronaut, 2)))[0])
    s = prepare([folder], tmp_path / "o", size=64, progress=False, faces=faces)
    assert [(c.name, c.frames, c.faces) for c in s.clips] == [("glimpse", 6, 2)]


def test_a_clip_whose_faces_are_all_of_low_quality_says_so(tmp_path):
    """One face per clip: a face cut by the frame's edge on every frame is found (listed, ok false) and
    no crop is kept; the line says why, not that no face was seen."""
    from fixtures_video import photo

    folder = tmp_path / "cut"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:05d}.png"), photo("obama_partial_face.jpg"))
    (clip,) = prepare([folder], tmp_path / "o", size=64, progress=False, faces="largest").clips
    assert (clip.frames, clip.faces) == (3, 0)
    assert clip.warnings == ["cut: 3 face(s) found, all below alignment quality 0.2 (turned away or cut by the "
                             "frame's edge): no face kept"]
    assert all(r["box"] and not r["ok"] for r in read_jsonl(tmp_path / "o" / "faces.jsonl"))


def test_a_photo_whose_only_face_is_badly_aligned_is_said_in_words(data_dir, tmp_path, capsys):
    """The cut-off face of obama_partial_face.jpg is found but below the alignment threshold: the warning
    said 'good faces on fewer than 1 of 1 frames'."""
    code, _, err = run_cli([str(data_dir / "obama_partial_face.jpg"), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "1 face track(s) with no well-aligned face in its 1 frame(s) not kept as clips" in err, err
