"""Frame sources on real files: videos (OpenCV and PyAV), frame folders, images in every bit depth and layout."""
import cv2
import numpy as np
import pytest

from fixtures_video import write_face_frames, write_face_video
from hac_runtime.errors import HacError
from hac_runtime.media import FolderSource, ImageSource, VideoSource, natural_key, open_source, to_bgr8


def frames_of(source):
    with open_source(source) as src:
        return src, list(src)


# ---- images ------------------------------------------------------------------------------------------------------
def test_jpeg_is_one_bgr_frame(data_dir):
    src, frames = frames_of(data_dir / "biden.jpg")
    assert isinstance(src, ImageSource) and src.name == "biden" and src.frame_count == 1 and src.fps is None
    assert len(frames) == 1 and frames[0][0] == 0
    img = frames[0][1]
    assert img.dtype == np.uint8 and img.shape == (440, 388, 3)
    np.testing.assert_array_equal(img, cv2.imread(str(data_dir / "biden.jpg")))


def test_rgba_png_loses_alpha_keeps_colour(data_dir):
    rgba = cv2.imread(str(data_dir / "obama_rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    _, [(_, img)] = frames_of(data_dir / "obama_rgba.png")
    np.testing.assert_array_equal(img, rgba[:, :, :3])


@pytest.mark.parametrize("kind", ["gray8", "gray16", "bgr16", "bgra16", "float32"])
def test_gray_16bit_and_float_images_become_8bit_bgr(kind, tmp_path, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    if kind == "gray8":
        data, expect, ext = gray, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), ".png"
    elif kind == "gray16":
        data, expect, ext = gray.astype(np.uint16) * 257, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), ".png"
    elif kind == "bgr16":
        data, expect, ext = astronaut.astype(np.uint16) * 257, astronaut, ".png"
    elif kind == "bgra16":
        alpha = np.full(astronaut.shape[:2] + (1,), 65535, np.uint16)
        data, expect, ext = np.concatenate([astronaut.astype(np.uint16) * 257, alpha], 2), astronaut, ".png"
    else:
        data, expect, ext = astronaut.astype(np.float32) / 255.0, astronaut, ".tiff"
    path = tmp_path / f"{kind}{ext}"
    assert cv2.imwrite(str(path), data)
    _, [(_, img)] = frames_of(path)
    assert img.dtype == np.uint8 and img.shape == (512, 512, 3)
    assert np.abs(img.astype(int) - expect.astype(int)).max() <= 1


def test_to_bgr8_layouts():
    gray_alpha = np.dstack([np.full((4, 4), 7, np.uint8), np.full((4, 4), 255, np.uint8)])
    assert (to_bgr8(gray_alpha) == 7).all() and to_bgr8(gray_alpha).shape == (4, 4, 3)
    assert (to_bgr8(np.full((2, 2), np.nan, np.float32)) == 0).all()
    with pytest.raises(HacError, match="5 channels"):
        to_bgr8(np.zeros((2, 2, 5), np.uint8))


# ---- frame folders -----------------------------------------------------------------------------------------------
def test_frame_folder_in_natural_order(tmp_path, astronaut):
    folder = tmp_path / "seq"
    write_face_frames(folder, astronaut, n_frames=12, size=(160, 120), pattern="img{}.png")  # img2 < img10
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"x")
    src, frames = frames_of(folder)
    assert isinstance(src, FolderSource) and src.name == "seq" and src.frame_count == 12
    assert [i for i, _ in frames] == list(range(12))
    for i, img in frames:
        np.testing.assert_array_equal(img, cv2.imread(str(folder / f"img{i}.png")))
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]
    assert sorted(["obama2.jpg", "obama.jpg", "f10.png", "f2.PNG", "clip.10", "clip.2"], key=natural_key) == [
        "clip.2", "clip.10", "f2.PNG", "f10.png", "obama.jpg", "obama2.jpg"]  # the stem first, as ls -v
    # a dot that is no media suffix is part of the name (hac-prepare's clip folders: NAME.faceN)
    assert sorted(["clip.face10", "clip.face9", "clip", "clip.face0"], key=natural_key) == [
        "clip", "clip.face0", "clip.face9", "clip.face10"]
    assert sorted(["s01.v10", "s01.v2", "a.b.mp4", "a.mp4"], key=natural_key) == ["a.mp4", "a.b.mp4", "s01.v2", "s01.v10"]


def test_unreadable_frame_leaves_a_gap_and_a_warning(tmp_path, astronaut):
    folder = tmp_path / "seq"
    write_face_frames(folder, astronaut, n_frames=5, size=(160, 120))
    (folder / "frame002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "frame000.png").write_bytes(b"")
    src, frames = frames_of(folder)
    assert [i for i, _ in frames] == [1, 3, 4]
    assert len(src.warnings) == 1 and "skipped 2 unreadable image(s): frame000.png, frame002.png" in src.warnings[0]


def test_bad_folders_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HacError, match="no image files"):
        open_source(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(HacError, match="none of its 3 image files can be read"):
        open_source(bad)


def test_image_list_in_its_own_order(tmp_path, astronaut):
    folder = tmp_path / "seq"
    write_face_frames(folder, astronaut, n_frames=4, size=(160, 120), pattern="img{}.png")
    listed = tmp_path / "clip.txt"
    listed.write_text("# frames, in play order\nseq/img3.png\n\nseq/img1.png\nseq/missing.png\n"
                      f"{folder / 'img0.png'}\n")
    src, frames = frames_of(listed)
    assert src.kind == "list" and src.name == "clip" and src.frame_count == 4
    assert [i for i, _ in frames] == [0, 1, 3]  # the missing file leaves its index unused
    np.testing.assert_array_equal(frames[0][1], cv2.imread(str(folder / "img3.png")))
    np.testing.assert_array_equal(frames[2][1], cv2.imread(str(folder / "img0.png")))
    assert "skipped 1 unreadable image(s): missing.png" in src.warnings[0]
    (tmp_path / "empty.lst").write_text("# nothing\n")
    with pytest.raises(HacError, match="empty.lst: lists no image"):
        open_source(tmp_path / "empty.lst")


# ---- videos ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_video_frames_fps_and_count(ext, tmp_path, astronaut):
    path = tmp_path / f"clip{ext}"
    write_face_video(path, astronaut, n_frames=9, size=(320, 240), fps=12.0)
    src, frames = frames_of(path)
    assert isinstance(src, VideoSource) and src.backend == "opencv"
    assert src.name == "clip" and src.fps == pytest.approx(12.0) and src.frame_count == 9
    assert [i for i, _ in frames] == list(range(9)) and src.warnings == []
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for _, f in frames)


def test_pyav_decodes_the_same_frames(tmp_path, astronaut):
    path = tmp_path / "clip.avi"
    write_face_video(path, astronaut, n_frames=6, size=(320, 240))
    cv_frames = [f for _, f in VideoSource(path, backend="opencv")]
    av_src = VideoSource(path, backend="pyav")
    av_frames = list(av_src)
    assert av_src.backend == "pyav" and av_src.frame_count == 6 and av_src.fps == pytest.approx(10.0)
    assert [i for i, _ in av_frames] == list(range(6))
    for a, (_, b) in zip(cv_frames, av_frames):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # same decode up to colour conversion


@pytest.mark.parametrize("backend", ["opencv", "pyav"])
def test_every_nth_frame_keeps_its_pixels_and_the_others_come_as_none(backend, tmp_path, astronaut):
    path = tmp_path / "clip.avi"
    write_face_video(path, astronaut, n_frames=7, size=(320, 240))
    every = {i: f for i, f in VideoSource(path, backend=backend)}
    src = VideoSource(path, backend=backend)
    src.every = 3
    frames = list(src)
    assert [i for i, _ in frames] == list(range(7)) and src.warnings == []  # every frame decoded and counted
    assert [i for i, f in frames if f is not None] == [0, 3, 6]
    for i, f in frames:
        if f is not None:  # the same pixels as when every frame is kept: the decoder skipped none
            np.testing.assert_array_equal(f, every[i])


def test_a_folder_reads_only_every_nth_image(tmp_path, astronaut):
    folder = tmp_path / "seq"
    write_face_frames(folder, astronaut, n_frames=5, size=(160, 120))
    (folder / "frame001.png").write_bytes(b"broken")  # between two kept frames: never read, so no warning
    src = open_source(folder)
    src.every = 2
    frames = list(src)
    assert [(i, f is not None) for i, f in frames] == [(0, True), (1, False), (2, True), (3, False), (4, True)]
    assert src.warnings == []
    np.testing.assert_array_equal(frames[2][1], cv2.imread(str(folder / "frame002.png")))


def test_pyav_takes_over_when_opencv_cannot_open(tmp_path, astronaut, monkeypatch):
    path = tmp_path / "clip.mp4"
    write_face_video(path, astronaut, n_frames=4, size=(160, 120))
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: real())  # OpenCV "cannot open": nothing opened
    src, frames = frames_of(path)
    assert src.backend == "pyav" and [i for i, _ in frames] == [0, 1, 2, 3]


def test_truncated_video_yields_what_it_can(tmp_path, astronaut):
    full = tmp_path / "full.avi"
    write_face_video(full, astronaut, n_frames=20, size=(320, 240))
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    for backend in ("opencv", "pyav"):
        src = VideoSource(cut, backend=backend)
        frames = list(src)
        assert 5 <= len(frames) < 20 and [i for i, _ in frames] == list(range(len(frames)))
        assert len(src.warnings) == 1 and f"decoded {len(frames)} of 20 frames" in src.warnings[0]


def test_damaged_first_frame_is_skipped_without_shifting_indices(tmp_path, astronaut):
    path = tmp_path / "clip.avi"
    write_face_video(path, astronaut, n_frames=8, size=(320, 240))
    data = bytearray(path.read_bytes())
    i = data.find(b"00dc", data.find(b"movi"))     # the first MJPEG frame's chunk
    n = int.from_bytes(data[i + 4:i + 8], "little")
    data[i + 8:i + 8 + n] = bytes(n)               # its JPEG wiped
    path.write_bytes(bytes(data))
    for backend in ("opencv", "pyav"):
        src = VideoSource(path, backend=backend)
        assert [i for i, _ in src] == list(range(1, 8)), backend
        assert "decoded 7 of 8 frames" in src.warnings[0]


def test_unusable_files_are_refused_with_one_line(tmp_path, astronaut):
    video = tmp_path / "v.mp4"
    write_face_video(video, astronaut, n_frames=6, size=(160, 120))
    (tmp_path / "half.mp4").write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # no moov atom
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello\n" * 50)
    (tmp_path / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    cv2.VideoWriter(str(tmp_path / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64)).release()  # no frames
    cases = {"zero.avi": "no frame decodes","half.mp4": "not an image or video that can be decoded", "empty.mp4": "empty file",
             "notes.txt": "none of the 50 images it lists can be read .a .txt source is a list of image paths", "missing.avi": "no such file or folder",
             "fake.jpg": "not an image or video that can be decoded|unreadable or damaged image"}
    for name, msg in cases.items():
        with pytest.raises(HacError, match=msg) as e:
            open_source(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value)


def test_video_reads_once(tmp_path, astronaut):
    path = tmp_path / "v.mp4"
    write_face_video(path, astronaut, n_frames=3, size=(160, 120))
    src = open_source(path)
    assert len(list(src)) == 3
    with pytest.raises(HacError, match="read only once"):
        list(src)


def test_stream_url_opens_through_opencv(tmp_path, astronaut):
    path = tmp_path / "v.mp4"
    write_face_video(path, astronaut, n_frames=3, size=(160, 120))
    src = open_source(f"file://{path}")
    assert src.frame_count == 3 and len(list(src)) == 3


def test_exif_orientation_is_applied(tmp_path, data_dir):
    from PIL import Image  # comes with scikit-image (dev extra)

    img = Image.open(data_dir / "biden.jpg")
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as phones write it
    img.save(tmp_path / "phone.jpg", exif=exif)
    _, [(_, frame)] = frames_of(tmp_path / "phone.jpg")
    assert frame.shape == (388, 440, 3)  # shown upright: width and height swapped
