"""Real test videos and frame folders made from real face photos with known motion.

``write_face_video(path, image, n_frames, motion=...)`` writes an OpenCV video of
``image`` moving (shift, rotation, scale, brightness) on a ``size`` canvas and
returns the per-frame ``2×3`` matrices from photo to frame pixels, so a test can
map the photo's own landmarks to where they must be in every frame. Importable
from any test folder (``tests/`` is on ``sys.path`` through ``tests/conftest.py``).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
MOTIONS = ("shift", "rotate", "scale", "brightness")


def astronaut_bgr() -> np.ndarray:
    """``skimage.data.astronaut()`` (512×512, a real photo with one frontal face) as BGR."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def photo(name: str) -> np.ndarray:
    """A photo from ``tests/data`` (see its LICENSE) as BGR; ``astronaut`` is skimage's."""
    if name == "astronaut":
        return astronaut_bgr()
    img = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(DATA / name)
    return img


def motion_matrices(image_shape, n_frames: int, motion=MOTIONS, size=(640, 480), max_shift=40.0,
                    max_angle=10.0, scale_range=(0.85, 1.15)) -> tuple[list[np.ndarray], list[float]]:
    """Per-frame photo → frame matrices and brightness gains: one smooth back-and-forth cycle over the clip."""
    h, w = image_shape[:2]
    cw, ch = size
    base = min(cw / w, ch / h)  # fit the photo into the canvas
    mats, gains = [], []
    for i in range(n_frames):
        t = 2 * math.pi * i / max(n_frames, 1)
        dx = max_shift * math.sin(t) if "shift" in motion else 0.0
        dy = 0.5 * max_shift * math.sin(2 * t) if "shift" in motion else 0.0
        ang = max_angle * math.sin(t) if "rotate" in motion else 0.0
        lo, hi = scale_range
        sc = (lo + hi) / 2 + (hi - lo) / 2 * math.sin(t + 1.0) if "scale" in motion else 1.0
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, base * sc)
        m[:, 2] += (cw / 2 - w / 2 + dx, ch / 2 - h / 2 + dy)
        mats.append(m)
        gains.append(1.0 + 0.35 * math.sin(t + 2.0) if "brightness" in motion else 1.0)
    return mats, gains


def render_frames(image: np.ndarray, n_frames: int, motion=MOTIONS, size=(640, 480), **kw):
    """Yield ``(frame_bgr, matrix)`` for each frame of the moving photo."""
    mats, gains = motion_matrices(image.shape, n_frames, motion, size, **kw)
    for m, g in zip(mats, gains):
        frame = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(40, 40, 40))
        if g != 1.0:
            frame = cv2.convertScaleAbs(frame, alpha=g, beta=0)
        yield frame, m


def write_face_video(path, image: np.ndarray, n_frames: int = 20, motion=MOTIONS, size=(640, 480), fps: float = 10.0,
                     fourcc: str | None = None, **kw) -> list[np.ndarray]:
    """Write ``image`` moving as a video at ``path`` (.mp4 → mp4v, .avi → MJPG); returns the frame matrices."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = fourcc or ("MJPG" if path.suffix.lower() == ".avi" else "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with {fourcc}")
    mats = []
    for frame, m in render_frames(image, n_frames, motion, size, **kw):
        writer.write(frame)
        mats.append(m)
    writer.release()
    return mats


def write_face_frames(folder, image: np.ndarray, n_frames: int = 10, motion=MOTIONS, size=(640, 480),
                      pattern: str = "frame{:03d}.png", **kw) -> list[np.ndarray]:
    """Write the moving photo as a frame folder (CK+ style); returns the frame matrices."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mats = []
    for i, (frame, m) in enumerate(render_frames(image, n_frames, motion, size, **kw)):
        cv2.imwrite(str(folder / pattern.format(i)), frame)
        mats.append(m)
    return mats


def write_blank_video(path, n_frames: int = 6, size=(320, 240), fps: float = 10.0) -> None:
    """A real video with no face in it (a moving gradient)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    x = np.linspace(0, 255, size[0], dtype=np.float32)[None, :].repeat(size[1], 0)
    for i in range(n_frames):
        g = ((x + 20 * i) % 256).astype(np.uint8)
        writer.write(cv2.merge([g, 255 - g, g // 2]))
    writer.release()


GROUP = (("obama.jpg", 120), ("biden.jpg", 110), ("astronaut", 100), ("hopper", 95), ("obama2.jpg", 90),
         ("obama.jpg", 52))  # (photo, face width in px): five people side by side and one further back


def hopper_bgr() -> np.ndarray:
    """Grace Hopper (matplotlib's sample data; U.S. Navy photograph, public domain)."""
    import matplotlib

    return cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"), cv2.IMREAD_COLOR)


def group_photo(faces=GROUP, size=(1280, 720), seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A group photo made of the real photos: each face cut out (2× its box) and pasted at its width on a
    ``size`` canvas, left to right, the last ones smaller ("further back"). Returns the image and the true face
    boxes (dlib HOG's box of each photo's face, moved with it), in the order of ``faces``."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    rng = np.random.default_rng(seed)
    canvas = np.full((size[1], size[0], 3), 0, np.uint8)
    canvas[:] = np.linspace(70, 150, size[0], dtype=np.uint8)[None, :, None]  # a plain wall
    boxes, x = [], 20
    for name, width in faces:
        img = hopper_bgr() if name == "hopper" else photo(name)
        rects = hog(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 0)
        r = max(rects, key=lambda r: r.width())
        bx, by, bw = r.left(), r.top(), r.width()
        s = width / bw
        x0, y0 = max(0, int(bx - 0.5 * bw)), max(0, int(by - 0.5 * bw))
        x1, y1 = min(img.shape[1], int(bx + 1.5 * bw)), min(img.shape[0], int(by + 1.6 * bw))
        cut = cv2.resize(img[y0:y1, x0:x1], (round((x1 - x0) * s), round((y1 - y0) * s)), interpolation=cv2.INTER_AREA)
        far = width < 70
        top = int(rng.integers(60, 120)) if not far else int(rng.integers(20, 60))
        ch, cw = cut.shape[:2]
        if x + cw > size[0] or top + ch > size[1]:
            raise ValueError(f"group_photo: {name} at {width} px does not fit the {size} canvas")
        canvas[top:top + ch, x:x + cw] = cut
        boxes.append((round(x + (bx - x0) * s), round(top + (by - y0) * s), round(bw * s), round(bw * s)))
        x += cw + 8
    return canvas, boxes
