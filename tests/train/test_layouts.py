"""Layout adapters on small fixture trees in each real on-disk layout, made from real face photos."""
import csv

import pytest

from fixtures_video import write_blank_video, write_face_frames, write_face_video
from hac_runtime.errors import HacError
from hac_train.data import detect_layout, load_index, prepare_faces
from hac_train.synth import asset_photos

SMALL = dict(size=(220, 200), max_shift=6.0, max_angle=4.0, scale_range=(0.95, 1.05))


@pytest.fixture(scope="module")
def faces():
    """Real face photos (the shipped 256 px crops: faces of ~110 px in the 220 × 200 frames, big enough for HOG)."""
    import cv2

    paths = {p.stem: p for p in asset_photos()}
    return {who: cv2.imread(str(paths[name])) for who, name in
            (("astronaut", "astronaut"), ("obama", "obama-1"), ("biden", "biden"))}


def make_ck(root, faces):
    """CK+: cohn-kanade-images/Sxxx/yyy/Sxxx_yyy_0000000n.png + Emotion/Sxxx/yyy/*_emotion.txt (codes 1-7)."""
    seqs = [("S005", "001", "astronaut", 3), ("S010", "002", "obama", 5), ("S011", "001", "biden", 7),
            ("S011", "004", "astronaut", None)]  # the last one is unlabelled (not among the 327)
    for subj, seq, who, code in seqs:
        d = root / "cohn-kanade-images" / subj / seq
        write_face_frames(d, faces[who], n_frames=4, pattern=f"{subj}_{seq}_{{:08d}}.png", **SMALL)
        if code is not None:
            e = root / "Emotion" / subj / seq
            e.mkdir(parents=True)
            (e / f"{subj}_{seq}_00000004_emotion.txt").write_text(f"   {code:.7e}\n")
    (root / "FACS").mkdir()
    return root


def test_ck_layout(tmp_path, faces):
    root = make_ck(tmp_path / "CK+", faces)
    assert detect_layout(root) == "ck+"
    idx = load_index(root)
    assert idx.layout == "ck+" and len(idx.classes) == 7 and idx.classes[1] == "contempt"
    got = sorted((s.subject, s.label, s.key) for s in idx.samples)
    assert got == [("S005", "disgust", "cohn-kanade-images/S005/001"), ("S010", "happiness", "cohn-kanade-images/S010/002"),
                   ("S011", "surprise", "cohn-kanade-images/S011/001")]


def test_ck_unreadable_label(tmp_path, faces):
    root = make_ck(tmp_path / "CK+", faces)
    bad = root / "Emotion" / "S010" / "002" / "S010_002_00000004_emotion.txt"
    bad.write_text("happy?\n")
    with pytest.raises(HacError) as e:
        load_index(root, "ck+")
    assert str(bad) in str(e.value) and "unreadable" in str(e.value)
    bad.write_text("9.0\n")
    with pytest.raises(HacError, match="not one of 1-7"):
        load_index(root, "ck+")


def make_oulu(root, faces):
    """Oulu-CASIA: OriginalImg/<VL|NI>/<Strong|Weak|Dark>/Pxxx/<Expression>/NNN.jpeg."""
    for spec, ill in (("VL", "Strong"), ("VL", "Dark"), ("NI", "Strong")):
        for subj, who in (("P001", "astronaut"), ("P002", "obama")):
            for expr in ("Anger", "Happiness"):
                write_face_frames(root / "OriginalImg" / spec / ill / subj / expr, faces[who], n_frames=3,
                                  pattern="{:03d}.jpeg", **SMALL)
    return root


def test_oulu_layout_and_subsets(tmp_path, faces):
    root = make_oulu(tmp_path / "Oulu-CASIA", faces)
    assert detect_layout(root) == "oulu"
    idx = load_index(root)
    assert idx.classes == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert sorted((s.subject, s.label) for s in idx.samples) == [("P001", "anger"), ("P001", "happiness"),
                                                                  ("P002", "anger"), ("P002", "happiness")]
    assert all("/VL/Strong/" in s.key for s in idx.samples)
    assert len(load_index(root, "oulu", subset="NI/Strong").samples) == 4
    assert len(load_index(root, "oulu", subset="all").samples) == 12
    with pytest.raises(HacError, match="subset"):
        load_index(root, "oulu", subset="VL/Noon")


def make_afew(root, faces):
    """AFEW: Train|Val/<Emotion>/*.avi."""
    for split, emo, who, name in (("Train", "Angry", "obama", "000146"), ("Train", "Happy", "astronaut", "002839"),
                                  ("Val", "Happy", "biden", "004521"), ("Val", "Neutral", "obama", "010924")):
        d = root / split / emo
        d.mkdir(parents=True, exist_ok=True)
        write_face_video(d / f"{name}.avi", faces[who], n_frames=5, **SMALL)
    return root


def test_afew_layout(tmp_path, faces):
    root = make_afew(tmp_path / "AFEW", faces)
    assert detect_layout(root) == "afew"
    idx = load_index(root)
    assert idx.classes == ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    assert sorted((s.split, s.label) for s in idx.samples) == [("train", "anger"), ("train", "happiness"),
                                                                ("val", "happiness"), ("val", "neutral")]
    assert all(s.subject is None for s in idx.samples)


def test_folders_and_manifest_subjects(tmp_path, faces):
    root = tmp_path / "mine"
    write_face_video(root / "smile" / "a.mp4", faces["astronaut"], n_frames=4, **SMALL)
    write_face_frames(root / "smile" / "b", faces["obama"], n_frames=3, **SMALL)
    write_face_video(root / "frown" / "c.mp4", faces["biden"], n_frames=4, **SMALL)
    (root / "frown" / "notes.txt").write_text("not a clip")
    assert detect_layout(root) == "folders"
    idx = load_index(root)
    assert idx.classes == ["frown", "smile"]
    assert sorted(s.key for s in idx.samples) == ["frown/c.mp4", "smile/a.mp4", "smile/b"]
    assert all(s.subject is None for s in idx.samples)
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "subject"])
        w.writerows([["smile/a.mp4", "smile", "eileen"], ["smile/b", "smile", "barack"], ["frown/c.mp4", "frown", "joe"]])
    assert {s.key: s.subject for s in load_index(root, "folders").samples} == \
        {"smile/a.mp4": "eileen", "smile/b": "barack", "frown/c.mp4": "joe"}
    # the same tree through the CSV adapter
    idx = load_index(root / "manifest.csv")
    assert idx.layout == "csv" and idx.classes == ["frown", "smile"] and len(idx.samples) == 3


@pytest.mark.slow
def test_faces_prepared_once_and_no_face_clip_skipped(tmp_path, faces):
    """The cache goes through hac_runtime.prepare: real detection on the CK+ tree; a clip without a face is skipped;
    a second call reuses every clip."""
    root = make_ck(tmp_path / "CK+", faces)
    blank = root / "cohn-kanade-images" / "S020" / "001"
    blank.mkdir(parents=True)
    import cv2
    import numpy as np

    for i in range(3):  # a real frame sequence with no face in it
        cv2.imwrite(str(blank / f"S020_001_{i:08d}.png"), np.full((120, 160, 3), 90 + 40 * i, np.uint8))
    (root / "Emotion" / "S020" / "001").mkdir(parents=True)
    (root / "Emotion" / "S020" / "001" / "S020_001_00000003_emotion.txt").write_text("1.0\n")
    glimpse = root / "cohn-kanade-images" / "S021" / "001"  # a face on its first frame only: not one to train on
    write_face_frames(glimpse, faces["obama"], n_frames=1, pattern="S021_001_{:08d}.png", **SMALL)
    for i in (1, 2):
        cv2.imwrite(str(glimpse / f"S021_001_{i:08d}.png"), np.full((200, 220, 3), 90, np.uint8))
    (root / "Emotion" / "S021" / "001").mkdir(parents=True)
    (root / "Emotion" / "S021" / "001" / "S021_001_00000003_emotion.txt").write_text("1.0\n")
    idx = load_index(root)
    clips, skipped, cache = prepare_faces(idx, None, "sequence", 64, progress=False)
    assert cache == root / ".hac-cache" / "sequence-64"
    assert sorted(c.sample.subject for c in clips) == ["S005", "S010", "S011"]
    assert all(c.faces >= 3 and len(list(c.faces_dir.glob("*.png"))) == c.faces for c in clips)
    assert [(s.key, s.label) for s in skipped] == [("cohn-kanade-images/S020/001", "anger"),
                                                    ("cohn-kanade-images/S021/001", "anger")]
    assert skipped[0].reason == "no face found in its 3 frames"
    assert skipped[1].reason.startswith("no face found in its 3 frames (1 face track(s) not found again by a "
                                        "later detection"), skipped[1].reason
    mtimes = {c.faces_dir: c.faces_dir.stat().st_mtime_ns for c in clips}
    again, _, _ = prepare_faces(load_index(root), None, "sequence", 64, progress=False)
    assert {c.faces_dir: c.faces_dir.stat().st_mtime_ns for c in again} == mtimes


def test_missing_empty_unknown(tmp_path):
    with pytest.raises(HacError, match="not found"):
        load_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HacError, match="empty"):
        load_index(tmp_path / "empty")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "readme.txt").write_text("hello")
    with pytest.raises(HacError, match="unknown layout"):
        load_index(tmp_path / "loose")
    with pytest.raises(HacError, match="unknown dataset layout"):
        load_index(tmp_path / "loose", "kinetics")
    with pytest.raises(HacError, match="not a CK"):
        load_index(tmp_path / "loose", "ck+")
    bad_csv = tmp_path / "m.csv"
    bad_csv.write_text("file,emotion\na.mp4,happy\n")
    with pytest.raises(HacError, match="'path' and 'label'"):
        load_index(bad_csv)


def test_blank_video_fixture_is_a_real_video(tmp_path):
    """The no-face clip used by the CLI tests decodes (so a skip means 'no face', not 'unreadable')."""
    from hac_runtime.media import open_source

    write_blank_video(tmp_path / "blank.mp4")
    assert sum(1 for _ in open_source(tmp_path / "blank.mp4")) == 6
