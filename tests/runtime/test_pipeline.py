"""The streaming pipeline end to end on real videos made from real photos, with real exported engines."""
import json
import os
import tracemalloc

import cv2
import numpy as np
import pytest

from fixtures_video import photo, write_blank_video
from hac_runtime.engines.ort.loader import spins
from hac_runtime.errors import HacError
from hac_runtime.media import FrameSource
from hac_runtime.pipeline import Pipeline
from hac_runtime.pipeline.run import run_sources

CLASSES = ["anger", "happiness", "surprise"]
FIELDS = {"source", "source_index", "track", "frame_start", "frame_end", "frames", "t_start", "t_end", "label",
          "score", "probs", "box", "attention"}


def _place(canvas, img, x, y, h):
    s = h / img.shape[0]
    small = cv2.resize(img, (round(img.shape[1] * s), h), interpolation=cv2.INTER_AREA)
    hh, ww = small.shape[:2]
    canvas[y:y + hh, x:x + ww] = small[: canvas.shape[0] - y, : canvas.shape[1] - x]


def write_two_face_video(path, n=30, enter=8, leave=22):
    """Obama on the left all along; Biden enters on the right at ``enter`` and leaves at ``leave``."""
    obama, biden = photo("obama.jpg"), photo("biden.jpg")
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(n):
        canvas = np.full((480, 640, 3), 50, np.uint8)
        _place(canvas, obama, 20 + 2 * i, 120, 260)
        if enter <= i < leave:
            _place(canvas, biden, 360 - 2 * (i - enter), 100, 260)
        w.write(canvas)
    w.release()


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    path = tmp_path_factory.mktemp("vid") / "two.avi"
    write_two_face_video(path)
    return path


def _check_result(r, source):
    assert set(r) == FIELDS
    assert r["source"] == str(source)
    assert r["label"] in CLASSES and r["label"] == max(r["probs"], key=r["probs"].get)
    assert abs(sum(r["probs"].values()) - 1.0) < 1e-6 and r["score"] == r["probs"][r["label"]]
    assert 0 <= r["frame_start"] <= r["frame_end"] and r["t_start"] <= r["t_end"]
    assert len(r["frames"]) == 3 and r["frames"] == sorted(r["frames"])  # the k frames the clip was made of
    assert r["frame_start"] <= r["frames"][0] and r["frames"][-1] <= r["frame_end"]
    assert len(r["box"]) == 4 and r["box"][2] > 20
    # eq. 2: one weight α in (0, 1) per sampled frame; eq. 3 normalises them into a convex combination
    att = r["attention"]
    assert att["frames"] == r["frames"] and len(att["alpha"]) == 3 and all(0 < a < 1 for a in att["alpha"])
    weights = np.array(att["alpha"]) / sum(att["alpha"])
    assert abs(weights.sum() - 1) < 1e-9 and (weights > 0).all()


@pytest.mark.parametrize("background", [False, True])
def test_two_faces_stable_tracks_one_result_each(artifacts, two_faces, background):
    with Pipeline(artifacts / "hac.onnx", detect_every=3, background_detection=background) as pipe:
        results = list(pipe.run([two_faces]))
    for r in results:
        _check_result(r, two_faces)
    assert len(results) == 2, results
    left, right = sorted(results, key=lambda r: r["box"][0])
    assert left["track"] != right["track"]
    assert left["frame_start"] == 0 and left["frame_end"] == 29  # one track through the whole video
    # enters and leaves; a detection beside the tracking finds it up to 2 × detect_every frames later
    assert 7 <= right["frame_start"] <= 10 + (2 * 3 if background else 0) and 19 <= right["frame_end"] <= 21
    assert pipe.reports[0].frames == 30


def test_analyse_every_looks_at_every_nth_frame_and_counts_them_all(artifacts, two_faces):
    with Pipeline(artifacts / "hac.onnx", detect_every=3, analyse_every=2, keep_boxes=True) as pipe:
        results = list(pipe.run([two_faces]))
    for r in results:
        _check_result(r, two_faces)
        assert all(f % 2 == 0 for f in r["frames"])  # clips are sampled from the analysed frames only
    assert len(results) == 2
    left, right = sorted(results, key=lambda r: r["box"][0])
    # found within 2 × detect_every analysed frames of entering (a detection beside the tracking)
    assert left["frame_start"] == 0 and left["frame_end"] == 28 and 8 <= right["frame_start"] <= 8 + 2 * 3 * 2
    report = pipe.reports[0]
    assert report.frames == 30  # every frame decoded and counted (fps, real-time factor)
    # the frames between keep the last analysed frame's boxes, so an annotated video does not flicker
    assert report.boxes[5] == report.boxes[4] and report.boxes[4] != report.boxes[2]
    # a face is drawn once it is confirmed (the next analysed frame), with the frames it had before
    assert [t for t, _ in report.boxes[0]] == [t for t, _ in report.boxes[1]] == [left["track"]]
    assert all(len({t for t, _ in v}) == len(v) for v in report.boxes.values())  # each face once a frame


def test_a_frame_source_passed_in_is_left_as_it_was_given(artifacts, tmp_path):
    """analyse_every tells the source to skip pixels while the pipeline reads it, then sets it back: the
    caller's FrameSource (e.g. re-read whole for an annotated video) yields every frame's pixels again."""
    from fixtures_video import write_face_frames
    from hac_runtime.media import open_source

    write_face_frames(tmp_path / "seq", photo("obama.jpg"), n_frames=6, size=(320, 240))
    src = open_source(tmp_path / "seq")
    with Pipeline(artifacts / "hac.onnx", analyse_every=2) as pipe:
        list(pipe.run([src]))
    assert pipe.reports[0].frames == 6 and src.every == 1
    assert all(f is not None for _, f in src)


def test_a_window_too_short_for_k_analysed_frames_is_said_at_once(artifacts, two_faces):
    said = []
    with Pipeline(artifacts / "hac.onnx", policy="window", window=1.0, analyse_every=5,
                  on_error=lambda name, msg: said.append(msg)) as pipe:
        assert list(pipe.run([two_faces])) == []  # 10 fps: 2 analysed frames a window, k = 3
    assert any("holds 2 analysed frames at 10 fps with analyse_every 5, fewer than the model's k = 3" in m
               for m in said), said


def test_sliding_window_results(artifacts, two_faces):
    # Biden (frames 8-21) is found by the background detection of frame 10, taken on 15, confirmed on 16:
    # windows at 17 and 20
    with Pipeline(artifacts / "hac.onnx", policy="window", window=1.0, stride=0.3) as pipe:
        results = list(pipe.run([two_faces]))
    tracks = {}
    for r in results:
        _check_result(r, two_faces)
        assert r["t_end"] - r["t_start"] <= 1.0
        tracks.setdefault(r["track"], []).append(r)
    assert len(tracks) == 2 and all(len(v) >= 2 for v in tracks.values())


def test_ort_and_torch_engines_agree(artifacts, two_faces):
    runs = {}
    for name, engine in (("hac.onnx", "ort"), ("hac.pt2", "torch")):
        with Pipeline(artifacts / name, engine=engine) as pipe:
            if engine == "ort":  # its workers sleep between clips: the face threads need the cores
                assert not spins(pipe.engine.session)
            runs[engine] = sorted(pipe.run([two_faces]), key=lambda r: r["track"])
    assert [r["label"] for r in runs["ort"]] == [r["label"] for r in runs["torch"]]
    for a, b in zip(runs["ort"], runs["torch"]):
        for c in CLASSES:
            assert abs(a["probs"][c] - b["probs"][c]) < 1e-4


def test_broken_source_among_good_ones(artifacts, two_faces, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00 ftypisom" + bytes(range(256)) * 8)
    errors = []
    with Pipeline(artifacts / "hac.onnx", on_error=lambda n, m: errors.append((n, m))) as pipe:
        results = list(pipe.run([broken, two_faces, tmp_path / "missing.avi"]))
    assert len(results) == 2 and all(r["source"] == str(two_faces) for r in results)
    assert {n for n, _ in errors} == {str(broken), str(tmp_path / "missing.avi")}
    with Pipeline(artifacts / "hac.onnx", on_error=lambda n, m: None) as pipe:
        with pytest.raises(HacError, match="no source could be used"):
            list(pipe.run([broken]))


class SyntheticStream(FrameSource):
    """An endless-looking live stream: one face drifting over a plain background, ``n`` frames."""

    def __init__(self, n):
        super().__init__("synthetic://stream", "stream", fps=25.0, frame_count=None)
        self.n = n
        face = photo("obama.jpg")
        s = 300 / face.shape[0]
        self.face = cv2.resize(face, (round(face.shape[1] * s), 300), interpolation=cv2.INTER_AREA)
        self.seen = 0

    def __iter__(self):
        for i in range(self.n):
            canvas = np.full((360, 480, 3), 60, np.uint8)
            x = 100 + int(20 * np.sin(i / 15))
            h, w = self.face.shape[:2]
            canvas[30:30 + h, x:x + w] = self.face
            self.seen = i + 1
            yield i, canvas


def test_a_pipeline_runs_again_whole_after_a_drain(artifacts):
    """drain() ends one run (its open track classified); the next run() of the same Pipeline reads its sources
    whole, with the results of a fresh Pipeline."""
    kw = dict(policy="window", window=1.0, stride=1.0, detect_every=5)
    with Pipeline(artifacts / "hac.onnx", engine="ort", **kw) as pipe:
        drained = []
        for r in pipe.run([SyntheticStream(400)]):
            drained.append(r)
            pipe.drain()
        assert pipe.draining and 1 <= len(drained) < 15
        again = list(pipe.run([SyntheticStream(100)]))
        assert not pipe.draining
    with Pipeline(artifacts / "hac.onnx", engine="ort", **kw) as fresh:
        expected = list(fresh.run([SyntheticStream(100)]))
    assert len(expected) == 4  # 1 s windows at 1 s strides over 4 s
    assert [(r["frame_start"], r["frame_end"], r["label"]) for r in again] == \
        [(r["frame_start"], r["frame_end"], r["label"]) for r in expected]
    assert max(abs(a["probs"][c] - b["probs"][c]) for a, b in zip(again, expected) for c in a["probs"]) < 1e-6


@pytest.mark.slow
def test_memory_flat_on_long_stream(artifacts):
    stream = SyntheticStream(900)
    with Pipeline(artifacts / "hac.onnx", policy="window", window=1.0, stride=1.0, detect_every=10) as pipe:
        it = pipe.run([stream])
        tracemalloc.start()
        samples = []
        n = 0
        for _ in it:
            n += 1
            if n in (8, 32):
                samples.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
    assert n >= 32 and stream.seen == 900
    grown = samples[1] - samples[0]
    assert grown < 4 * 2**20, f"memory grew by {grown / 2**20:.1f} MiB between windows 8 and 32"


def hac_run(argv, capsys):
    from hac_runtime.cli import run_main

    with pytest.raises(SystemExit) as e:
        run_main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_faceless_video_no_results_exit_0(artifacts, tmp_path):
    blank = tmp_path / "blank.mp4"
    write_blank_video(blank, n_frames=8)
    summary = run_sources([blank], artifacts / "hac.onnx", out=tmp_path / "r.jsonl", log=lambda m: None)
    assert summary.results == 0 and summary.sources_ok == 1
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_run_sources_writes_jsonl_and_annotated_video(artifacts, two_faces, tmp_path):
    logs = []
    summary = run_sources([two_faces], artifacts / "hac.onnx", engine="ort", out=tmp_path / "r.jsonl",
                          video_out=tmp_path / "annotated.avi", log=logs.append)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert summary.results == len(lines) == 2
    assert any("engine hac.onnx on ort/cpu" in m and "CPUExecutionProvider" in m for m in logs)
    cap = cv2.VideoCapture(str(tmp_path / "annotated.avi"))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = cap.read()
    cap.release()
    assert ok and frames == 30
    # the box colour was drawn around the left face
    assert (np.abs(first.astype(int) - (0, 200, 255)).sum(2) < 90).sum() > 100


def test_cli_good_and_bad_sources(artifacts, two_faces, tmp_path, capsys):
    code, out, err = hac_run([two_faces, tmp_path / "missing.mp4", "--model", artifacts / "hac.onnx",
                              "--analyse-every", "2"], capsys)
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 2 and all(set(r) == FIELDS for r in lines)
    assert all(f % 2 == 0 for r in lines for f in r["frames"])
    assert f"hac-run: {tmp_path / 'missing.mp4'}: no such file or folder" in err
    assert "Traceback" not in err


def test_a_folder_of_separate_photos_gives_each_face_its_own_result(artifacts, face_frames_dir, tmp_path, capsys):
    """A folder of photos (names that are not one numbered sequence) is read as hac-prepare reads it: each photo
    a face of its own, on every photo whatever --analyse-every says. Read as frames, no face was confirmed by
    the next image (another photo) and the run gave no result at all."""
    album = tmp_path / "album"
    album.mkdir()
    for name in ("obama.jpg", "biden.jpg", "obama2.jpg"):
        cv2.imwrite(str(album / name), photo(name))
    code, out, err = hac_run([album, "--model", artifacts / "hac.onnx", "--analyse-every", "2"], capsys)
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and f"hac-run: {album}: read as 3 separate photos, each face classified on its own" in err
    # natural order: biden, obama, obama2; one track per photo, its k frames that photo
    assert [r["frames"] for r in lines] == [[i] * 3 for i in range(3)] and len({r["track"] for r in lines}) == 3
    assert all(r["source"] == str(album) and r["source_index"] == 0 for r in lines)
    assert [r["file"] for r in lines] == ["biden.jpg", "obama.jpg", "obama2.jpg"]  # which photo each result is of
    with Pipeline(artifacts / "hac.onnx", policy="window", on_error=lambda *a: None) as pipe:  # a camera's policy
        assert [r["frames"] for r in pipe.run([album])] == [[i] * 3 for i in range(3)]  # still a clip per photo
        one = list(pipe.run([album / "biden.jpg"]))
        assert [r["frames"] for r in one] == [[0] * 3] and "file" not in one[0]  # and of one photo: its source
    with Pipeline(artifacts / "hac.onnx", on_error=lambda *a: None) as pipe:
        frames_folder = list(pipe.run([face_frames_dir[0]]))
        assert frames_folder and all("file" not in r for r in frames_folder)  # a frame folder's clips span files
    # its annotated video: every photo (three sizes), fitted into the first one's size with its aspect kept
    code, _, _ = hac_run([album, "--model", artifacts / "hac.onnx", "--video-out", tmp_path / "album.avi"], capsys)
    cap, frames = cv2.VideoCapture(str(tmp_path / "album.avi")), []
    assert cap.get(cv2.CAP_PROP_FPS) == 1.0  # each photo shown for a second, not a 40 ms flash
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert code == 0 and [f.shape for f in frames] == [photo("biden.jpg").shape] * 3
    bars = frames[2][:, :8].astype(int)  # obama2.jpg is narrower than biden.jpg: black bars left and right
    assert bars.max() < 40 and frames[2][:, 150:230].mean() > 40
    code, out, err = hac_run([face_frames_dir[0], "--model", artifacts / "hac.onnx"], capsys)  # frames: one face
    assert code == 0 and "separate photos" not in err and len(out.splitlines()) == 1


def test_results_into_a_fifo_stream_through_it(artifacts, face_video, tmp_path, capsys):
    """``--out`` a FIFO (or /dev/null): the lines are written into it; it was renamed onto, which as root
    replaced /dev/null itself with a regular file."""
    import stat
    import threading

    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    got: list = []

    def read():
        with open(fifo) as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code, _, err = hac_run([face_video[0], "--model", artifacts / "hac.onnx", "--out", fifo, "-q"], capsys)
    reader.join(timeout=60)
    assert code == 0, err
    lines = [json.loads(x) for x in got[0].splitlines()]
    assert len(lines) == 1 and lines[0]["label"] in lines[0]["probs"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]


def test_cli_exit_2_when_nothing_usable(artifacts, tmp_path, capsys):
    code, out, err = hac_run([tmp_path / "missing.mp4", "--model", artifacts / "hac.onnx"], capsys)
    assert code == 2 and out == ""
    missing = tmp_path / "missing.mp4"
    last = err.strip().splitlines()[-1]
    assert last == f"hac-run: error: no source could be used ({missing}: no such file or folder)"
    assert "engine" not in err  # refused before the model was opened
    (tmp_path / "notes.mp4").write_text("not a video")  # found, but not media: named once in the summary
    code, out, err = hac_run([tmp_path / "notes.mp4", "--model", artifacts / "hac.onnx"], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("hac-run: error: no source could be used") and last.count("notes.mp4") == 1
    code, _, err = hac_run([tmp_path / "notes.mp4", "--model", tmp_path / "nope.onnx"], capsys)
    assert code == 2 and "nope.onnx: model file not found" in err and "Traceback" not in err


def test_cli_faceless_video_exit_0_with_note(artifacts, tmp_path, capsys):
    blank = tmp_path / "blank.mp4"
    write_blank_video(blank, n_frames=8)
    code, out, err = hac_run([blank, "--model", artifacts / "hac.onnx"], capsys)
    assert code == 0 and out == ""
    assert "no face found in 8 frames" in err


def _write_long_face_video(path, n):
    """Obama's head and shoulders drifting, ``n`` frames of 320×240 MJPG: one face track all along."""
    face = photo("obama.jpg")
    s = 520 / face.shape[0]
    face = cv2.resize(face, (round(face.shape[1] * s), 520), interpolation=cv2.INTER_AREA)
    cx = face.shape[1] // 2
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    for i in range(n):
        x = cx - 160 + int(15 * np.sin(i / 20))
        w.write(np.ascontiguousarray(face[20:260, x:x + 320]))
    w.release()


@pytest.mark.slow
def test_ctrl_c_classifies_the_faces_already_seen(artifacts, tmp_path):
    """SIGINT mid-file: the open track is closed and classified, its line written, exit 130."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from fixtures_proc import wait_for_cpu

    video, out = tmp_path / "long.avi", tmp_path / "r.jsonl"
    n = 1500
    _write_long_face_video(video, n)
    exe = Path(sys.executable).with_name("hac-run")
    proc = subprocess.Popen([str(exe), str(video), "--model", str(artifacts / "hac.onnx"), "--engine", "ort",
                             "--out", str(out), "--video-out", str(tmp_path / "drawn.mp4")],
                            stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the engine line: the pipeline is running
    assert "engine hac.onnx on ort/cpu" in first, first
    wait_for_cpu(proc, 3.0)  # decoding and face work under way, however loaded the machine is
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = first + rest
    assert proc.returncode == 130, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 1 and set(lines[0]) == FIELDS  # the track was still open: only the drain emits it
    assert 0 < lines[0]["frame_end"] < n - 1
    assert "Ctrl-C: stopping the sources" in err and "interrupted; 1 result(s) written" in err
    assert "no annotated video (drawn only after a whole run)" in err  # said, not silently missing
    assert not (tmp_path / "drawn.mp4").exists() and "Traceback" not in err


def test_annotated_mp4_is_h264_with_the_panel_inside_and_one_file_per_repeated_source(artifacts, two_faces,
                                                                                     tmp_path):
    """Issue 16: MPEG-4 Part 2 that browsers do not play, a panel cut off by the frame, and one path (and
    indistinguishable lines) for a source given twice."""
    import av

    summary = run_sources([two_faces, two_faces], artifacts / "hac.onnx", engine="ort", out=tmp_path / "r.jsonl",
                          video_out=tmp_path / "a.mp4", log=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert summary.results == len(lines) == 4
    assert sorted(r["source_index"] for r in lines) == [0, 0, 1, 1]
    for i in (0, 1):
        path = tmp_path / f"a.two-{i}.mp4"
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            frames = [f.to_ndarray(format="bgr24") for f in c.decode(stream)]
        assert len(frames) == 30
        # both faces are in view at frame 15 with a decision made: two label backgrounds in the box colour
        mask = (np.abs(frames[15].astype(int) - (0, 200, 255)).sum(2) < 60).astype(np.uint8)
        assert mask.sum() > 400


CLASSES7 = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]


def _result(label="surprise"):
    probs = dict(zip(CLASSES7, np.linspace(0.05, 0.25, 7) / np.linspace(0.05, 0.25, 7).sum()))
    return {"label": label, "score": probs[label], "probs": probs}


@pytest.mark.parametrize("box", [(250, 180, 60, 55), (5, 5, 60, 60), (140, 100, 50, 50)])
def test_panel_always_inside_the_frame(box):
    from hac_runtime.pipeline.output import draw_faces

    frame = np.full((240, 320, 3), 128, np.uint8)
    (face,) = draw_faces(frame, [(3, box, _result())])
    x, y, w, h = face.panel
    assert 0 <= x and x + w <= 320 and 0 <= y and y + h <= 240  # all seven rows visible
    from hac_runtime.boxes import intersection

    assert intersection(face.panel, box) == 0, "beside, below or above the face, not over it"
    assert frame[y + 2:y + h - 2, x + 2:x + w - 2].mean() < 110  # the panel was drawn there


def _assert_clear(layout, shape):
    """No face's label or panel covers another face, label or panel; everything inside the frame."""
    from hac_runtime.boxes import intersection

    fh, fw = shape[:2]
    for i, f in enumerate(layout):
        for r in (f.label, f.panel):
            if r is not None:
                assert 0 <= r[0] and r[0] + r[2] <= fw and 0 <= r[1] and r[1] + r[3] <= fh, (i, r)
        for j, g in enumerate(layout):
            if i == j:
                continue
            if f.panel is not None:
                assert intersection(f.panel, g.box) == 0, (i, j, f, g)
                assert intersection(f.panel, g.label) == 0, (i, j, f, g)
                assert g.panel is None or intersection(f.panel, g.panel) == 0, (i, j, f, g)
            assert intersection(f.label, g.label) == 0, (i, j, f, g)


def test_panels_of_neighbouring_faces_keep_clear_of_each_other():
    """Issue 16: in a crowded frame a face's panel was drawn over its neighbour's face and panel."""
    from hac_runtime.pipeline.output import draw_faces

    frame = np.full((480, 640, 3), 128, np.uint8)
    classes = ["anger", "happiness", "sadness", "surprise", "neutral"]
    result = {"label": "happiness", "score": 0.5, "probs": dict(zip(classes, [0.1, 0.5, 0.1, 0.1, 0.2]))}
    faces = [(0, (155, 125, 75, 75)), (1, (450, 135, 75, 75)), (2, (300, 330, 70, 70))]  # room for every panel
    layout = draw_faces(frame, [(t, b, result) for t, b in faces])
    assert all(f.panel is not None for f in layout)
    _assert_clear(layout, frame.shape)


def test_a_crowd_keeps_every_label_readable_and_panels_only_where_they_fit():
    """Six faces side by side near the top of a 1280x720 frame (a group photo made of the test photos): the
    panels were drawn over the neighbours' faces and labels, and later labels over earlier ones."""
    from hac_runtime.pipeline.output import draw_faces

    frame = np.full((720, 1280, 3), 128, np.uint8)
    boxes = [(62, 161, 150, 151), (313, 120, 127, 152), (549, 102, 105, 138), (760, 70, 100, 110),
             (950, 90, 110, 120), (1120, 60, 120, 130)]
    layout = draw_faces(frame, [(t, b, _result()) for t, b in enumerate(boxes)])
    _assert_clear(layout, frame.shape)
    assert any(f.panel is not None for f in layout)  # the room below the row is used
    assert any(f.panel is None for f in layout)  # not every face of this crowd gets one


def test_a_close_up_filling_the_frame_still_gets_its_panel():
    from hac_runtime.pipeline.output import draw_faces

    frame = np.full((480, 640, 3), 128, np.uint8)
    (face,) = draw_faces(frame, [(0, (20, 10, 600, 460), _result())])
    assert face.panel is not None


def test_a_decision_is_never_painted_before_it_was_made():
    from hac_runtime.pipeline.output import Decisions

    def _label_at(results, track, frame):
        return Decisions(results).at(track, frame)

    early = {"track": 0, "frame_start": 0, "frame_end": 10, "label": "a"}
    later = {"track": 0, "frame_start": 5, "frame_end": 20, "label": "b"}
    got = [(_label_at([early, later], 0, f) or {}).get("label") for f in (4, 10, 15, 20, 30)]
    assert got == [None, "a", "a", "b", "b"]
    final = {"track": 0, "frame_start": 0, "frame_end": 20, "label": "final"}  # listed last: wins the tie
    assert _label_at([early, later, final], 0, 25)["label"] == "final"
    assert _label_at([early, later, final], 1, 25) is None


def test_progress_line_per_source_on_a_terminal_and_none_otherwise(artifacts, two_faces, tmp_path):
    """Issue 16: hac-run printed no progress and no real-time factor. On a terminal (a pty here): a line per
    source with frames/s and the real-time factor; piped: nothing but the usual lines."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    hac_run = str(Path(sys.executable).with_name("hac-run"))
    args = [hac_run, str(two_faces), str(two_faces), "--model", str(artifacts / "hac.onnx"), "--engine", "ort",
            "--out", str(tmp_path / "r.jsonl")]
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = seen.decode(errors="replace")
    assert "two.avi: 30/30 frames" in text and "frames/s" in text and "× real time" in text, text
    piped = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "frames/s" not in piped.stderr, piped.stderr


def test_prefetch_ends_under_a_slow_consumer_and_releases_an_abandoned_source():
    """Review: the end marker was dropped after 1 s of a full queue and the consumer waited for ever; a source
    whose read was still blocked when the pipeline gave up was never released."""
    import threading
    import time

    from hac_runtime.pipeline.pipeline import Prefetch

    got, done = [], threading.Event()

    def consume():
        for item in Prefetch(iter(range(3)), 1, lambda: False):
            time.sleep(1.2)  # longer than the old 1 s the marker waited for
            got.append(item)
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    assert done.wait(60) and got == [0, 1, 2]

    gate, released, cancelled = threading.Event(), threading.Event(), threading.Event()

    def blocked():
        yield 0
        gate.wait(60)  # a read that does not return (a stalled stream)
        yield 1

    pre = Prefetch(blocked(), 2, cancelled.is_set, release=released.set)
    it = iter(pre)
    assert next(it) == 0
    cancelled.set()
    assert list(it) == []  # cancelled: iteration ends although the read is blocked
    assert pre.close() is False and not released.is_set()  # not released under the blocked read
    gate.set()
    assert released.wait(30)  # the decoder thread released it once its read returned


def test_timeline_png_one_row_per_track(artifacts, two_faces, tmp_path, capsys):
    """--timeline: a PNG per source, a row per face track, each class's probability in its own colour."""
    import matplotlib

    logs = []
    run_sources([two_faces], artifacts / "hac.onnx", engine="ort", out=tmp_path / "r.jsonl",
                timeline=tmp_path / "t.png", log=logs.append)
    png = cv2.imread(str(tmp_path / "t.png"))
    assert png is not None and f"hac-run: timeline {tmp_path / 't.png'}" in logs
    assert png.shape[0] == round((1.2 + 1.5 * 2) * 110)  # two tracks: two rows (Obama all along, Biden 1.4 s)
    tab10 = [tuple(round(255 * v) for v in matplotlib.colormaps["tab10"](i)[:3][::-1]) for i in range(3)]
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    for i, cls in enumerate(CLASSES):  # every class with some probability is drawn in its colour
        area = (np.abs(png.astype(int) - tab10[i]).sum(2) < 40).sum()
        assert area > 200 or all(r["probs"][cls] < 0.02 for r in lines), (cls, area)

    code, _, err = hac_run([two_faces, "--model", artifacts / "hac.onnx", "--timeline", tmp_path / "t.jpg"], capsys)
    assert code == 2 and "give a .png file name" in err and "Traceback" not in err
    code, _, err = hac_run(["0", "--model", artifacts / "hac.onnx", "--timeline", tmp_path / "t.png"], capsys)
    assert code == 2 and "--timeline needs file or folder sources" in err


def test_background_detection_gives_the_same_results_on_every_run(artifacts, two_faces):
    """The detection beside the tracking is taken a fixed number of frames after it was asked for: two runs of
    one video agree exactly, however fast the threads ran."""
    runs = []
    for _ in range(2):
        with Pipeline(artifacts / "hac.onnx", engine="ort", detect_every=3, background_detection=True) as pipe:
            runs.append(sorted(pipe.run([two_faces]), key=lambda r: r["track"]))
    assert len(runs[0]) == len(runs[1]) == 2
    for a, b in zip(*runs):
        assert (a["track"], a["frame_start"], a["frame_end"], a["frames"], a["label"], a["box"]) == \
               (b["track"], b["frame_start"], b["frame_end"], b["frames"], b["label"], b["box"])
        assert max(abs(a["probs"][c] - b["probs"][c]) for c in CLASSES) < 1e-6  # the same faces, aligned alike


def test_cli_analyse_every_below_one_is_bad_usage(artifacts, two_faces, capsys):
    code, out, err = hac_run([two_faces, "--model", artifacts / "hac.onnx", "--analyse-every", "0"], capsys)
    assert code == 2 and out == ""
    assert "--analyse-every" in err and "Traceback" not in err


def test_cli_an_annotated_video_format_it_cannot_write_is_refused_before_the_run(artifacts, two_faces, tmp_path,
                                                                                  capsys):
    """It was refused after the run: every clip classified, the results written, then exit 2."""
    results = tmp_path / "results.jsonl"
    results.write_text("earlier\n")
    code, out, err = hac_run([two_faces, "--model", artifacts / "hac.onnx", "--out", results,
                              "--video-out", tmp_path / "a.gif"], capsys)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        f"hac-run: error: {tmp_path / 'a.gif'}: annotated video must be .mp4, .avi, .mov or .mkv"]
    assert results.read_text() == "earlier\n" and not (tmp_path / "a.gif").exists()


def test_lag_warning_says_how_far_behind_and_what_to_change():
    from hac_runtime.pipeline.progress import lag_warning

    assert lag_warning(250, 10.0, 25.0, 1) is None  # real time
    assert lag_warning(240, 10.0, 25.0, 1) is None  # 0.4 s behind: a hiccup, not a lag
    assert lag_warning(100, 5.0, 25.0, 1) is None  # 0.8× but only 1 s behind
    assert lag_warning(2250, 100.0, 25.0, 1) is None  # 10 s behind but at 0.9×
    assert lag_warning(500, 40.0, 25.0, 1, waited=10.0) is None  # the face thread waited: the camera is slow
    assert lag_warning(500, 40.0, 90000.0, 1) is None  # a stream's clock rate, not its frames
    assert lag_warning(2240, 100.0, 25.0, 1).startswith("0.89× real time")  # 0.896 is not shown as 0.90
    said = lag_warning(500, 40.0, 25.0, 1)  # 0.5× real time, 20 s behind
    assert said.startswith("0.50× real time after 40 s") and "20 s so far" in said
    assert "--analyse-every 2 or more" in said
    assert "--analyse-every 6 or more" in lag_warning(500, 40.0, 25.0, 3)
    assert "cannot follow it" in lag_warning(500, 40.0, 25.0, 3, max_every=5)  # 6 would leave < k in a window
    assert "cannot follow it" in lag_warning(50, 40.0, 25.0, 1)
    assert lag_warning(0, 0.0, 25.0, 1) is None and lag_warning(10, 5.0, None, 1) is None


def test_a_live_source_read_slower_than_it_runs_is_said_once(artifacts, monkeypatch):
    """A source announcing 1000 fps cannot be followed: said once, while it runs, for a live source only."""
    import hac_runtime.pipeline.progress as progress

    monkeypatch.setattr(progress, "LAG_SECONDS", 0.05)
    live, recorded = SyntheticStream(100), SyntheticStream(100)
    live.fps = recorded.fps = 1000.0
    recorded.path = "recorded.mp4"  # the same frames, not live: a file may be read slower than it plays
    for src, expected in ((live, 1), (recorded, 0)):
        errors = []
        with Pipeline(artifacts / "hac.onnx", policy="window", on_error=lambda n, m: errors.append(m)) as pipe:
            list(pipe.run([src]))
        lags = [m for m in errors if "real time after" in m]
        assert len(lags) == expected, errors
        assert all("a live source's results fall behind it" in m and "--analyse-every" in m for m in lags)


def test_cli_new_face_score_above_every_face_is_said(artifacts, two_faces, capsys):
    code, out, err = hac_run([two_faces, "--model", artifacts / "hac.onnx", "--new-face-score", "9"], capsys)
    assert code == 0 and out == ""
    assert "detection(s) scored under the new-face score 9 and started no face" in err
    assert "no face found in 30 frames" in err and "Traceback" not in err


def test_cli_a_face_on_one_frame_only_is_not_classified_and_said(artifacts, astronaut, tmp_path, capsys):
    """The next frame's detection does not find the face again: a tentative track, closed; no result, no face
    counted, one line saying why (a false box seen once behaves the same)."""
    from fixtures_video import render_frames

    path = tmp_path / "glimpse.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in [next(iter(render_frames(astronaut, 1)))[0]] + [np.full((480, 640, 3), 90, np.uint8)] * 29:
        writer.write(frame)
    writer.release()
    code, out, err = hac_run([path, "--model", artifacts / "hac.onnx"], capsys)
    assert code == 0 and out == ""
    assert "1 face track(s) not found again by a later detection" in err and "not classified" in err
    assert "no face found in 30 frames" in err and "Traceback" not in err


def test_the_report_counts_the_faces_it_draws(artifacts, two_faces):
    """SourceReport.faces counts the faces of confirmed tracks, a track's first (tentative) frame once it is
    confirmed: the same faces the annotated video draws (back-filled first frames included)."""
    with Pipeline(artifacts / "hac.onnx", engine="ort", keep_boxes=True) as pipe:
        list(pipe.run([two_faces]))
    (report,) = pipe.reports
    drawn = sum(len(pairs) for pairs in report.boxes.values())
    assert report.faces == drawn > 30 and report.frames == 30  # Obama on all 30 frames, Biden on some
    assert {t for pairs in report.boxes.values() for t, _ in pairs} == {0, 1}


@pytest.mark.parametrize("frames_with_face", [20, 1])
def test_a_face_cut_by_the_frame_is_counted_as_low_quality_only_once_confirmed(artifacts, tmp_path, frames_with_face):
    """face_recognition's obama_partial_face (a face cut by the photo's edge, alignment quality < 0.2): on every
    frame, it is a face of low quality, said in one line; on the first frame only, its track is never confirmed:
    no face, no low-quality face, one unconfirmed track."""
    part = photo("obama_partial_face.jpg")[:694, :300]
    path = tmp_path / "cut.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (300, 694))
    for i in range(20):
        w.write(part if i < frames_with_face else np.full_like(part, 90))
    w.release()
    errors = []
    with Pipeline(artifacts / "hac.onnx", engine="ort", on_error=lambda n, m: errors.append(m)) as pipe:
        assert list(pipe.run([path])) == []
    (r,) = pipe.reports
    if frames_with_face == 20:
        assert (r.faces, r.low_quality, r.unconfirmed) == (20, 20, 0)
        assert errors == ["20 of 20 faces below alignment quality 0.2 (turned away or cut by the frame's edge): "
                          "not classified"]
    else:
        assert (r.faces, r.low_quality, r.unconfirmed) == (0, 0, 1)
        assert len(errors) == 1 and errors[0].startswith("1 face track(s) not found again by a later detection")


@pytest.mark.parametrize("value", ["abc", ""])
def test_cli_new_face_score_not_a_number_is_bad_usage(artifacts, two_faces, capsys, value):
    code, out, err = hac_run([two_faces, "--model", artifacts / "hac.onnx", "--new-face-score", value], capsys)
    assert code == 2 and out == ""
    assert "'--new-face-score'" in err and "is not a valid float" in err and "Traceback" not in err
