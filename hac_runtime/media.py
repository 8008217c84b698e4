"""Frame sources: video files (OpenCV, PyAV where OpenCV fails), frame folders, image lists, single images,
cameras and URLs.

``open_source(x)`` returns a ``FrameSource``: iterate it for ``(frame_index, bgr)``
with ``bgr`` an ``H×W×3`` uint8 BGR array; grayscale, RGBA and 16-bit or float
images are converted. Opening checks that at least one frame decodes, so a file
that is no image or video, an empty or unreadable video or a folder without a
readable image raises ``HacError`` at once. A video that breaks off part way
yields the frames it has and records a line in ``source.warnings``; an
unreadable image in a frame folder is skipped (its index stays unused, so frame
indices never shift) and recorded the same way.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from hac_runtime.errors import HacError, one_line, some_names

IMAGE_EXTS = frozenset(
    ".png .jpg .jpeg .jpe .bmp .dib .tif .tiff .webp .pgm .ppm .pbm .pnm .pxm .jp2 .exr .hdr .pic .sr .ras .avif .gif"
    .split())
VIDEO_EXTS = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ogv .ts .mts .m2ts .y4m".split())
LIST_EXTS = frozenset((".txt", ".lst"))  # image lists: one image path per line
MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS | LIST_EXTS


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any OpenCV image (gray, gray+alpha, BGR, BGRA; uint8, 16-bit or float) → ``H×W×3`` uint8 BGR."""
    import cv2

    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        elif img.dtype == np.int16:
            img = (np.clip(img, 0, None) >> 7).astype(np.uint8)
        elif np.issubdtype(img.dtype, np.floating):
            img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 3:
        return img
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if channels in (1, 2):  # gray, gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR)
    raise HacError(f"images with {channels} channels are not supported")


def read_image(path) -> np.ndarray | None:
    """One image as uint8 BGR (EXIF orientation applied), or None when it cannot be decoded."""
    import cv2

    if not Path(path).is_file():  # a FIFO, device or folder would block or fail inside the decoder
        return None
    try:
        data = np.fromfile(str(path), np.uint8)  # also handles non-ASCII paths
    except OSError:
        return None
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    return None if img is None or img.size == 0 else to_bgr8(img)


def natural_key(name: str):
    """Sort key putting ``frame2`` before ``frame10``, and ``obama.jpg`` before ``obama2.jpg``: an image, video or
    list suffix is compared after the rest of the name, as ``ls -v`` and file managers do (any other dot is part
    of the name: ``clip.face10`` comes after ``clip.face9``)."""
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem and f".{ext.lower()}" in MEDIA_EXTS):
        stem, ext = name, ""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", stem)], ext.lower()


def image_files(folder) -> list[Path]:
    """Frame entries (by extension) directly in ``folder``, in natural order; hidden ones excluded.

    Entries that cannot be read as an image (a broken link, a folder named ``x.png``) stay in the list:
    a frame's index is its position here, so leaving one out would shift every later frame; reading them
    gives None and the source reports them as unreadable."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


_NUMBERED = re.compile(r"^(.*?)(\d+)$")
#: what cameras and phones name photos: numbered, yet separate pictures, not frames
_CAMERA_PREFIXES = re.compile(r"^(img|dsc|dscn|dscf|dcim|pxl|mvimg|photo|picture|image|pic|p)[_-]?\d*[_-]?$",
                              re.IGNORECASE)


def is_frame_sequence(files: list[Path]) -> bool:
    """The rule that tells a folder of frames from a folder of photos: every file name (without its
    extension) is one shared prefix followed by a number — ``00012.png``, ``frame012.jpg``,
    ``S005_001_00000012.png`` — or there is a single image. Anything else (``beach.jpg``, ``party.jpg``),
    and cameras' numbered names (``IMG_1234.JPG``, ``DSC_0001.jpg``, ``PXL_…``), is a folder of photos."""
    if len(files) <= 1:
        return True
    matches = [_NUMBERED.match(f.stem) for f in files]
    if not all(matches) or len({m.group(1) for m in matches}) != 1:
        return False
    return not _CAMERA_PREFIXES.match(matches[0].group(1))  # IMG_1234.JPG, DSC_0001.jpg: photos


def stray_images(files: list[Path]) -> list[Path]:
    """The images that keep a folder of numbered frames from being a frame sequence (``cover.jpg`` or
    ``00012 copy.png`` beside ``00001.png`` … ``00020.png``): none when the folder is a sequence, or unless
    one prefix numbers at least five of its images and three quarters of them (an album: ``beach.jpg``,
    ``party1.jpg`` … ``party4.jpg``)."""
    if is_frame_sequence(files):
        return []
    prefixes = [m.group(1) if (m := _NUMBERED.match(f.stem)) else None for f in files]
    counts = Counter(p for p in prefixes if p is not None and not _CAMERA_PREFIXES.match(p))
    prefix, n = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))
    if n < 5 or 4 * n < 3 * len(files):
        return []
    return [f for f, p in zip(files, prefixes) if p != prefix]


class FrameSource:
    """Iterable of ``(frame_index, bgr uint8)``; ``name``, ``fps`` and ``frame_count`` (None when unknown),
    ``warnings`` (lines about frames that could not be read).

    ``every = N``: only every N-th frame's pixels; the frames between come as ``(frame_index, None)``,
    decoded (a video's later frames need them) but neither converted nor, in a folder, read
    (``PipelineConfig.analyse_every``)."""

    kind = ""
    every = 1

    def __init__(self, path, name: str, fps: float | None = None, frame_count: int | None = None):
        self.path = path
        self.name = name
        self.fps = fps
        self.frame_count = frame_count
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def file_of(self, index: int) -> str | None:
        """The file a frame came from (frame folders, image lists, images); None for videos and streams."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, fps={self.fps}, frame_count={self.frame_count})"


class ImageSource(FrameSource):
    """A single image: one frame, index 0."""

    kind = "image"

    def __init__(self, path: Path):
        img = read_image(path)
        if img is None:
            raise HacError(f"{path}: unreadable or damaged image")
        super().__init__(path, path.stem, None, 1)
        self._img = img

    def __iter__(self):
        yield 0, self._img

    def file_of(self, index: int) -> str | None:
        return Path(self.path).name


def read_image_list(path: Path) -> list[Path]:
    """The image paths of a list file, one per line (relative to the list's folder; blank lines and # comments skipped)."""
    if not path.is_file():
        raise HacError(f"{path}: not a regular file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise HacError(f"{path}: unreadable image list ({type(e).__name__})") from None
    lines = (line.strip() for line in text.splitlines())
    return [path.parent / line for line in lines if line and not line.startswith("#")]


class FolderSource(FrameSource):
    """A folder of frames (CK+ / Oulu-CASIA style): images in natural name order, index = position."""

    kind = "folder"

    def __init__(self, path: Path, files: list[Path] | None = None):
        files = image_files(path) if files is None else files
        if not files:
            raise HacError(f"{path}: {'folder holds no image files' if self.kind == 'folder' else 'lists no image'}")
        super().__init__(path, path.stem if self.kind == "list" else path.name, None, len(files))
        self.files = files
        self._first = next(((i, img) for i, f in enumerate(files) if (img := read_image(f)) is not None), None)
        if self._first is None:
            raise HacError(f"{path}: none of its {len(files)} image files can be read" if self.kind == "folder" else
                           f"{path}: none of the {len(files)} images it lists can be read "
                           f"(a {path.suffix} source is a list of image paths, one per line)")

    def file_of(self, index: int) -> str | None:
        """The frame's file: its name in a folder; in an image list, its path as the list gives it."""
        if not 0 <= index < len(self.files):
            return None
        f = self.files[index]
        if self.kind == "list":
            try:
                return f.relative_to(Path(self.path).parent).as_posix()
            except ValueError:
                return str(f)
        return f.name

    def __iter__(self):
        start, img = self._first
        bad = [f.name for f in self.files[:start]]
        yield start, img
        for i in range(start + 1, len(self.files)):
            if i % self.every:
                yield i, None
                continue
            img = read_image(self.files[i])
            if img is None:
                bad.append(self.files[i].name)
                continue
            yield i, img
        if bad:
            self.warnings.append(f"{self.path}: skipped {len(bad)} unreadable image(s): {some_names(bad)}")


class ImageListSource(FolderSource):
    """A text file naming one frame image per line, in order (index = line position among the images)."""

    kind = "list"

    def __init__(self, path: Path):
        super().__init__(path, read_image_list(path))


STREAM_TIMEOUT_S = 10.0  #: default bound on opening a stream URL and on every read from it


def is_photo(src: FrameSource) -> bool:
    """A source of one frame (an image, or a folder, list or video of one): a face there has no later frame."""
    return src.kind == "image" or getattr(src, "frame_count", None) == 1


def is_album(src: FrameSource) -> bool:
    """A folder of separate photos, not of frames (``is_frame_sequence``): each image is a photo of its own."""
    return src.kind == "folder" and not is_frame_sequence(src.files)


def is_stream(source) -> bool:
    """A camera index or a URL (anything with ``://``), as opposed to a file or folder."""
    if isinstance(source, int):
        return True
    s = str(source)
    return "://" in s or (s.isdigit() and not Path(s).exists())


class VideoSource(FrameSource):
    """A video file (or camera, or URL), decoded with OpenCV, or with PyAV where OpenCV cannot decode it.

    A damaged frame is skipped and its index left unused (up to ``max_bad`` in a row; more
    means the video ends there); fewer frames than the container announces gives a warning.
    """

    kind = "video"

    def __init__(self, path, name: str | None = None, backend: str = "auto", max_bad: int = 25,
                 timeout: float | None = None):
        super().__init__(path, name or Path(str(path)).stem)
        #: URLs only: seconds to open, and to wait for each read, before giving up (never reconnects)
        self.timeout = STREAM_TIMEOUT_S if timeout is None else float(timeout)
        self.url = isinstance(path, str) and "://" in path
        if backend not in ("auto", "opencv", "pyav"):
            raise HacError(f"unknown video backend {backend!r}; choose auto, opencv or pyav")
        self.max_bad = max_bad
        self.backend = None
        self._reader = None
        self._frames = None
        self._first = None
        self._yielded = 0
        self._error = None
        errors = []
        for b in (("opencv", "pyav") if backend == "auto" else (backend,)):
            try:
                self._frames = self._open_opencv() if b == "opencv" else self._open_pyav()
                self._first = next(self._frames, None)
                if self._first is None:
                    raise RuntimeError(self._error or "no frame decodes")
                self.backend = b
                break
            except Exception as e:  # noqa: BLE001 - try the next decoder, report all at the end
                errors.append(f"{b}: {_reason(e)}")
                self.close()
                self._error = None
        if self.backend is None:
            if self.url:
                errors = [e.replace("Immediate exit requested", f"no answer within {self.timeout:g} s") for e in errors]
                raise HacError(f"{path}: cannot open the stream ({'; '.join(errors)})")
            raise HacError(f"{path}: not an image or video that can be decoded ({'; '.join(errors)})")

    def _open_opencv(self):
        import cv2

        if self.url:
            ms = int(self.timeout * 1000)
            cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(self.path if isinstance(self.path, int) else str(self.path))
        self._reader = cap
        if not cap.isOpened():
            raise RuntimeError("cannot open")
        fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(fps) if fps and fps > 0 and np.isfinite(fps) else None
        self.frame_count = count if count > 0 else None
        return self._opencv_frames(cap)

    def _opencv_frames(self, cap):
        index = bad = 0
        while True:
            if index % self.every:  # decoded, not converted
                ok, frame = cap.grab(), None
            else:
                ok, frame = cap.read()
                ok = ok and frame is not None
            if ok:
                yield index, None if frame is None else to_bgr8(frame)
                bad = 0
            elif self.frame_count is None or index + 1 >= self.frame_count or bad >= self.max_bad:
                return  # the end, or too many damaged frames in a row
            else:
                bad += 1
            index += 1

    def _open_pyav(self):
        import av

        # a URL: bounded open and reads (PyAV's default waits for ever on a server that never answers)
        container = av.open(str(self.path), timeout=(self.timeout, self.timeout)) if self.url else av.open(str(self.path))
        self._reader = container
        if not container.streams.video:
            raise RuntimeError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = stream.frames or None
        return self._pyav_frames(container, stream)

    def _pyav_frames(self, container, stream):
        index = bad = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except Exception as e:  # noqa: BLE001 - av.error.*: a damaged packet, one frame lost
                    self._error = _reason(e)
                    bad += 1
                    index += 1
                    if bad > self.max_bad:
                        return
                    continue
                for frame in frames:
                    yield index, None if index % self.every else frame.to_ndarray(format="bgr24")
                    index += 1
                    bad = 0
        except Exception as e:  # noqa: BLE001 - the container itself breaks off
            self._error = _reason(e)

    def __iter__(self):
        if self._first is None:
            raise HacError(f"{self.path}: a video source can be read only once")
        first, self._first = self._first, None
        yield first
        n, last, gap = 1, time.monotonic(), 0.0
        for item in self._frames:
            now = time.monotonic()
            gap, last = now - last, now  # the wait for this frame (a timed-out read still returns a last one)
            yield item
            n += 1
        self.close()
        if is_stream(self.path):  # a live source that ends has broken off: say so
            stalled = self.url and max(gap, time.monotonic() - last) >= 0.9 * self.timeout  # a read timed out
            why = (f" (no data for {self.timeout:g} s)" if stalled and not self._error
                   else f" ({self._error})" if self._error else "")
            self.warnings.append(f"{self.path}: the stream ended after {n} frames{why}")
        elif self.frame_count and n < self.frame_count:
            why = f" ({self._error})" if self._error else ""
            self.warnings.append(f"{self.path}: decoded {n} of {self.frame_count} frames; "
                                 f"the video is truncated or damaged{why}")
        elif self._error:
            self.warnings.append(f"{self.path}: some frames could not be decoded ({self._error})")

    def close(self) -> None:
        r, self._reader = self._reader, None
        if r is None:
            return
        if hasattr(r, "release"):
            r.release()
        else:
            r.close()


def _reason(e: Exception) -> str:
    """A decoder's exception as a short phrase (PyAV's ``[Errno N] text: 'path'`` → ``text``)."""
    msg = one_line(e)
    msg = re.sub(r"^\[Errno -?\d+\]\s*", "", msg)
    return re.sub(r":\s*'[^']*'$", "", msg)


def open_source(source, timeout: float | None = None) -> FrameSource:
    """A ``FrameSource`` for a video file, a frame folder, an image list (.txt/.lst), an image file, a camera
    index or a stream URL (``timeout``: seconds to open it and per read, default ``STREAM_TIMEOUT_S``)."""
    if isinstance(source, FrameSource):
        return source
    if is_stream(source) and (isinstance(source, int) or "://" not in str(source)):
        return VideoSource(int(source), name=f"camera{int(source)}", backend="opencv")  # type: ignore[arg-type]
    if isinstance(source, str) and "://" in source:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.split("://", 1)[1]).strip("_.") or "stream"
        return VideoSource(source, name=name, timeout=timeout)  # type: ignore[arg-type]
    path = Path(source)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise HacError(f"{path}: no such file or folder")
    if not path.is_file():
        raise HacError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise HacError(f"{path}: empty file")
    if path.suffix.lower() in LIST_EXTS:
        return ImageListSource(path)
    import cv2

    if path.suffix.lower() not in VIDEO_EXTS and cv2.haveImageReader(str(path)):
        return ImageSource(path)
    return VideoSource(path)
