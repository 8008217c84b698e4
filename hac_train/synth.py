"""``hac-synth``: labelled *synthetic* expression clips made from real face photos.

For demos, tests and benchmarks when no licensed dataset (CK+, Oulu-CASIA,
AFEW) is at hand. Each clip takes one shipped photo of a real person
(``hac_train/assets/faces``, see its README for sources and licences), finds
its 68 landmarks with ``hac_runtime.faces`` and deforms the face by a
landmark-guided piecewise-affine warp into one of seven expressions, from
onset (neutral) to apex over the clip, as CK+ sequences do, and shades in the
folds the expression shows. Each clip also gets its own face-shape change,
background and colour (four identities are few: the model must learn the
expressions, not the faces) and the "in the wild" factors of §4.1/§4.4: head
pose (roll, yaw-like squeeze, scale, drift), an illumination gradient, blur,
noise, grey-scale frames. A clip is redrawn (up to ``MAX_TRIES`` times) until
the face stage of hac-train's cache (``FaceProcessor``, default detector, as
``hac-prepare --faces largest``) keeps a face on every frame of the written video:
detected, strong enough to start on the first frame and be confirmed on the
second (``faces.processor``), and of alignment quality (``faces.quality``).

The expressions are caricatures of the FACS prototypes, not real emotions: a
model trained on them learns these warps, nothing about real faces. Clips of
one identity never straddle the ``split`` column of the manifest.

Output: ``OUT/<label>/<identity>-<nnnn>.mp4`` (or frame folders) and
``OUT/manifest.csv`` with ``path,label,subject,split,frames,photo,intensity``.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from hac_runtime.atomic import atomic_path, check_output_dir
from hac_runtime.errors import HacError
from hac_runtime.faces.detectors import DEFAULT_DETECTOR

MAX_TRIES = 6  # clip parameters drawn until the cache's face stage keeps every frame's face
STRENGTH = 1.25  # caricature: the apex displacements below, scaled
EXPRESSIONS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
FORMATS = ("mp4", "frames")

# iBUG 68-point indices
JAW, R_BROW, L_BROW = range(0, 17), range(17, 22), range(22, 27)
NOSTRILS = range(31, 36)
R_UPPER_LID, L_UPPER_LID, R_LOWER_LID, L_LOWER_LID = (37, 38), (43, 44), (40, 41), (46, 47)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
INNER_LIP = tuple(range(60, 68))


@dataclass
class Photo:
    """A face photo (BGR) with its 68 landmarks and the identity it shows."""

    name: str
    identity: str
    image: np.ndarray
    landmarks: np.ndarray  # (68, 2) float64


def asset_photos() -> list[Path]:
    """The shipped face photos: ``<identity>[-n].jpg``."""
    folder = resources.files("hac_train") / "assets" / "faces"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jpg"))


def load_photos(paths=None) -> list[Photo]:
    """Read the photos and find their landmarks with ``hac_runtime.faces`` (HOG, then HOG upsampled ×2)."""
    import cv2

    from hac_runtime.faces import LandmarkPredictor, make_detector

    detectors = [make_detector("hog"), make_detector("hog", upsample=1)]
    predictor = LandmarkPredictor()
    photos = []
    for path in paths or asset_photos():
        path = Path(path)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise HacError(f"{path}: unreadable face photo")
        boxes = next((b for d in detectors if (b := d.detect(img))), None)
        if not boxes:
            raise HacError(f"{path}: no face found in this photo")
        landmarks = predictor.predict(img, boxes[0]).astype(np.float64)
        photos.append(Photo(path.stem, path.stem.split("-")[0], img, landmarks))
    return photos


# ---- expressions ------------------------------------------------------------------------------------------------------
def _face_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit x (subject's right eye → left eye, image left → right), unit y (down the face), interocular distance."""
    r, l = lm[36:42].mean(0), lm[42:48].mean(0)
    d = float(np.linalg.norm(l - r))
    ex = (l - r) / d
    return ex, np.array([-ex[1], ex[0]]), d


def apex_offsets(expression: str, side: int = 1) -> np.ndarray:
    """Landmark displacements at the apex, ``(68, 2)`` in interocular units of the face frame (x right, y down).

    Caricatures of the FACS prototypes: AU 4 brow lowerer, AU 1+2 brow raiser, AU 12 lip-corner puller,
    AU 15 lip-corner depressor, AU 10 upper-lip raiser, AU 26/27 jaw drop, AU 20 lip stretcher, AU 5 upper-lid
    raiser, AU 6/7 cheek raiser and lid tightener, AU 9 nose wrinkler, AU 14 unilateral dimpler (contempt,
    on ``side`` +1 image-right or -1 image-left).
    """
    o = np.zeros((68, 2))

    def move(idx, dx, dy, mirror=False):
        for i in idx:
            # mirror: dx points outward from the face centre line on both sides
            sgn = (1 if i in (*L_BROW, *L_UPPER_LID, *L_LOWER_LID, 53, 54, 55, 63, 64, 65, 42, 43, 44, 45, 46, 47)
                   or i in range(9, 17) else -1) if mirror else 1
            o[i] += (sgn * dx, dy)

    if expression == "happiness":
        move((48, 54), 0.20, -0.17, mirror=True)
        move((49, 53, 59, 55, 60, 64), 0.10, -0.09, mirror=True)
        move((50, 52), 0.03, -0.04, mirror=True)
        move((56, 57, 58), 0.0, 0.05)
        move((65, 66, 67), 0.0, 0.10)  # lips part: teeth
        move((*R_LOWER_LID, *L_LOWER_LID), 0.0, -0.05)
        move((1, 2, 3, 13, 14, 15), 0.03, -0.03, mirror=True)
    elif expression == "surprise":
        move((*R_BROW, *L_BROW), 0.0, -0.28)
        move((*R_UPPER_LID, *L_UPPER_LID), 0.0, -0.08)
        move((6, 7, 8, 9, 10), 0.0, 0.32)
        move((4, 5, 11, 12), 0.0, 0.16)
        move(LOWER_LIP, 0.0, 0.40)
        move((48, 54, 60, 64), -0.08, 0.18, mirror=True)
    elif expression == "fear":
        move((*R_BROW, *L_BROW), 0.0, -0.16)
        move((20, 21, 22, 23), -0.07, -0.08, mirror=True)  # inner brows up and together
        move((*R_UPPER_LID, *L_UPPER_LID), 0.0, -0.08)
        move((48, 54), 0.20, 0.06, mirror=True)
        move((49, 53, 59, 55, 60, 64), 0.10, 0.03, mirror=True)
        move(LOWER_LIP, 0.0, 0.16)
        move((7, 8, 9), 0.0, 0.08)
    elif expression == "anger":
        move((19, 20, 21, 22, 23, 24), -0.09, 0.20, mirror=True)  # brows down and together
        move((17, 18, 25, 26), -0.03, 0.08, mirror=True)
        move((*R_UPPER_LID, *L_UPPER_LID), 0.0, 0.05)
        move((*R_LOWER_LID, *L_LOWER_LID), 0.0, -0.05)
        move((48, 54), -0.08, 0.03, mirror=True)
        move((61, 62, 63, 50, 51, 52), 0.0, 0.06)  # lips pressed
        move((65, 66, 67, 56, 57, 58), 0.0, -0.08)
        move(NOSTRILS, 0.04, 0.0, mirror=True)
    elif expression == "sadness":
        move((20, 21, 22, 23), -0.03, -0.16, mirror=True)  # inner brows up
        move((17, 18, 25, 26), 0.0, 0.08)
        move((*R_UPPER_LID, *L_UPPER_LID), 0.0, 0.07)
        move((48, 54), -0.04, 0.20, mirror=True)
        move((49, 53, 59, 55, 60, 64), -0.02, 0.09, mirror=True)
        move((56, 57, 58, 65, 66, 67), 0.0, -0.04)
        move((7, 8, 9), 0.0, 0.05)
    elif expression == "disgust":
        move(UPPER_LIP, 0.0, -0.17)
        move((48, 54), -0.03, -0.04, mirror=True)
        move(NOSTRILS, 0.05, -0.10, mirror=True)
        move((29, 30), 0.0, -0.05)
        move((19, 20, 21, 22, 23, 24), -0.04, 0.12, mirror=True)
        move((*R_LOWER_LID, *L_LOWER_LID), 0.0, -0.07)
        move((56, 57, 58), 0.0, 0.06)
    elif expression == "contempt":
        corner, near, inner = (54, (53, 55), 64) if side > 0 else (48, (49, 59), 60)
        o[corner] += (0.22 * side, -0.18)
        for i in near:
            o[i] += (0.10 * side, -0.09)
        o[inner] += (0.12 * side, -0.10)
        for i in ((45, 46, 47) if side > 0 else (36, 40, 41)):
            o[i] += (0.0, -0.05)
    else:
        raise HacError(f"unknown expression {expression!r}; choose one of {', '.join(EXPRESSIONS)}")
    return o


def _triangles(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """Delaunay triangles (index triplets) of ``points`` inside a ``w × h`` image."""
    import cv2

    sub = cv2.Subdiv2D((-1, -1, w + 2, h + 2))
    lookup = {}
    for i, (x, y) in enumerate(points):
        lookup[(round(float(x), 3), round(float(y), 3))] = i
        sub.insert((float(x), float(y)))
    tris = []
    for t in sub.getTriangleList():
        idx = [lookup.get((round(float(t[j]), 3), round(float(t[j + 1]), 3))) for j in (0, 2, 4)]
        if None not in idx:
            tris.append(idx)
    return np.asarray(tris, np.int32)


def piecewise_affine(image: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Warp ``image`` so that points ``src`` move to ``dst``, one affine map per triangle (backward mapping)."""
    import cv2

    h, w = image.shape[:2]
    ids = np.full((h, w), -1, np.int32)
    mats = np.zeros((len(triangles), 2, 3), np.float32)
    for t, tri in enumerate(triangles):
        mats[t] = cv2.getAffineTransform(dst[tri].astype(np.float32), src[tri].astype(np.float32))
        cv2.fillConvexPoly(ids, np.round(dst[tri]).astype(np.int32), int(t))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    m = mats[np.maximum(ids, 0)]
    mx = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    my = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    uncovered = ids < 0
    mx[uncovered], my[uncovered] = xs[uncovered], ys[uncovered]
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class ExpressionWarper:
    """One photo's mesh: landmarks plus a fixed ring and the image border as anchors (the face moves, the rest stays)."""

    def __init__(self, photo: Photo):
        h, w = photo.image.shape[:2]
        lm = photo.landmarks
        ex, ey, d = _face_frame(lm)
        centre = lm.mean(0)
        ring = [centre + 2.4 * d * np.array([math.cos(a), math.sin(a)]) for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
        border = [(x, y) for x in (0, w / 2, w - 1) for y in (0, h / 2, h - 1) if (x, y) != (w / 2, h / 2)]
        forehead = [lm[i] - 0.5 * d * ey for i in (17, 19, 21, 22, 24, 26)]
        pts = np.vstack([lm, forehead, ring, border]).astype(np.float64)
        pts[:, 0] = pts[:, 0].clip(0, w - 1)
        pts[:, 1] = pts[:, 1].clip(0, h - 1)
        self.photo, self.points, self.ex, self.ey, self.d = photo, pts, ex, ey, d
        self.triangles = _triangles(pts, w, h)

    def offsets(self, expression: str, side: int = 1, face_units: np.ndarray | None = None) -> np.ndarray:
        """Apex displacements of every mesh point in image pixels (forehead points follow the brows halfway);
        ``face_units`` gives other landmark displacements (68, 2) in interocular units instead."""
        o = apex_offsets(expression, side) if face_units is None else face_units
        px = (o[:, :1] * self.ex + o[:, 1:] * self.ey) * self.d
        full = np.zeros_like(self.points)
        full[:68] = px
        full[68:74] = 0.5 * px[[17, 19, 21, 22, 24, 26]]
        return full

    def render(self, offsets: np.ndarray, amount: float, mouth: str | None, expression: str = "", side: int = 1,
               base: np.ndarray | None = None, image: np.ndarray | None = None):
        """The photo at expression ``amount`` (0 neutral … 1 apex); ``mouth`` fills the parted lips (teeth / dark);
        the expression's folds are shaded in. ``base``: a constant shape change (pixels) under the expression;
        ``image``: the photo with another background."""
        import cv2

        dst = self.points + amount * offsets + (0 if base is None else base)
        out = piecewise_affine(self.photo.image if image is None else image, self.points, dst, self.triangles)
        segs = wrinkles(expression, dst[:68], self.d)
        if expression == "contempt":
            c = dst[54] if side > 0 else dst[48]
            segs.append((c + side * 0.08 * self.d * self.ex - 0.08 * self.d * self.ey,
                         c + side * 0.12 * self.d * self.ex + 0.08 * self.d * self.ey))
        out = shade(out, segs, amount, self.d)
        if mouth and amount > 0.05:
            inner = np.round(dst[list(INNER_LIP)]).astype(np.int32)
            mask = np.zeros(out.shape[:2], np.uint8)
            cv2.fillPoly(mask, [inner], 255)
            mask = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * min(1.0, amount * 1.5)
            colour = np.array((225, 228, 232) if mouth == "teeth" else (35, 25, 40), np.float32)
            out = (out * (1 - mask) + colour * mask).astype(np.uint8)
        return out


MOUTH = {"happiness": "teeth", "surprise": "dark", "fear": "dark"}


def _lerp(a, b, t):
    return a + (b - a) * t


def wrinkles(expression: str, lm: np.ndarray, d: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Line segments (in the warped face) of the folds an expression shows: glabellar furrows (AU 4), forehead
    lines (AU 1+2), nose wrinkles (AU 9), nasolabial folds (AU 6/10/12), a dimple (AU 14), a chin boss (AU 17)."""
    ex = lm[45] - lm[36]
    ex = ex / (np.linalg.norm(ex) + 1e-9)
    ey = np.array([-ex[1], ex[0]])
    segs = []
    brow_in = (lm[21] + lm[22]) / 2
    if expression in ("anger", "fear", "disgust"):
        for t in ((0.35, 0.65) if expression == "anger" else (0.5,)):
            x = _lerp(lm[21], lm[22], t)
            segs.append((x - 0.25 * d * ey, x + 0.2 * d * ey))
    if expression in ("surprise", "fear"):
        top = lm[17:27].mean(0) - 0.45 * d * ey
        for k in range(3):
            c = top - 0.17 * k * d * ey
            segs.append((c - 0.55 * d * ex, c + 0.55 * d * ex))
    if expression == "disgust":
        for k in range(3):
            c = _lerp(lm[27], lm[29], 0.3 + 0.25 * k)
            segs.append((c - 0.22 * d * ex, c + 0.22 * d * ex))
    if expression in ("happiness", "disgust"):
        for wing, corner, out in ((31, 48, -1), (35, 54, 1)):
            segs.append((lm[wing] + out * 0.12 * d * ex, lm[corner] + out * 0.12 * d * ex + 0.1 * d * ey))
    if expression == "sadness":
        segs.append((lm[58] + 0.2 * d * ey, lm[56] + 0.2 * d * ey))
        segs.append((brow_in - 0.05 * d * ey, brow_in - 0.3 * d * ey))
    if expression == "contempt":
        pass  # the dimple depends on the side: see ExpressionWarper.render
    return segs


def shade(img: np.ndarray, segments, amount: float, d: float, darkness: float = 0.45) -> np.ndarray:
    """Darken soft lines along ``segments`` (strength ∝ ``amount``)."""
    import cv2

    if not segments or amount <= 0.05:
        return img
    mask = np.zeros(img.shape[:2], np.float32)
    width = max(1, int(round(0.05 * d)))
    for a, b in segments:
        cv2.line(mask, tuple(int(v) for v in np.round(a)), tuple(int(v) for v in np.round(b)), 1.0, width, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.8, 0.03 * d))
    return (img * (1.0 - darkness * amount * mask[..., None])).astype(np.uint8)


# ---- in-the-wild factors and clips ----------------------------------------------------------------------------------
def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def identity_morph(rng: np.random.Generator) -> np.ndarray:
    """A random change of face shape (68, 2) in interocular units: eye spacing, brow height, nose length, mouth
    width and height, jaw width, chin length. It varies the faces of the few shipped identities clip by clip, so
    a model must learn the expressions rather than four faces."""
    o = np.zeros((68, 2))
    eyes, brows, nose, mouth, jaw, chin = (rng.uniform(-a, a) for a in (0.07, 0.08, 0.1, 0.1, 0.1, 0.1))
    o[list(range(36, 42)) + list(range(17, 22)), 0] -= eyes
    o[list(range(42, 48)) + list(range(22, 27)), 0] += eyes
    o[17:27, 1] += brows
    o[30:36, 1] += nose
    o[48:68, 1] += 0.6 * nose
    o[[48, 60], 0] -= mouth
    o[[54, 64], 0] += mouth
    o[[49, 59, 61, 67], 0] -= mouth / 2
    o[[53, 55, 63, 65], 0] += mouth / 2
    o[0:8, 0] -= jaw * np.linspace(0.3, 1.0, 8)
    o[9:17, 0] += jaw * np.linspace(1.0, 0.3, 8)
    o[5:12, 1] += chin * np.array([0.3, 0.6, 0.9, 1.0, 0.9, 0.6, 0.3])
    return o


def new_background(photo: Photo, rng: np.random.Generator) -> np.ndarray:
    """The photo with the area around the head replaced by a random smooth colour field (feathered edge)."""
    import cv2

    img = photo.image
    h, w = img.shape[:2]
    lm = photo.landmarks
    ex, ey, d = _face_frame(lm)
    centre = lm[27:36].mean(0) - 0.6 * d * ey
    mask = np.zeros((h, w), np.float32)
    axes = (int(1.45 * d), int(1.95 * d))
    angle = float(np.degrees(np.arctan2(ex[1], ex[0])))
    cv2.ellipse(mask, tuple(int(v) for v in centre), axes, angle, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.25 * d)[..., None]
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] if rng.random() < 0.5 else \
        np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    field = c1 + (c2 - c1) * t + cv2.resize(rng.normal(0, 18, (6, 6, 3)).astype(np.float32), (w, h))
    return np.clip(img * mask + field * (1 - mask), 0, 255).astype(np.uint8)


def recolour(frame: np.ndarray, hue: float, sat: float) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def clip_params(rng: np.random.Generator, n_frames: int) -> dict:
    """Random per-clip factors: timing, face shape, background, colour, pose, light, blur, noise."""
    return {
        "morph": identity_morph(rng), "background": bool(rng.random() < 0.7), "hue": rng.uniform(-12, 12),
        "sat": rng.uniform(0.6, 1.3),
        "onset": rng.uniform(0.0, 0.25), "apex": rng.uniform(0.6, 0.9), "intensity": rng.uniform(0.85, 1.2),
        "roll": rng.uniform(-7, 7, 2), "yaw": rng.uniform(-0.08, 0.08, 2), "scale": rng.uniform(0.95, 1.12),
        "drift": rng.uniform(-5, 5, (2, 2)), "flip": bool(rng.random() < 0.5), "side": int(rng.choice((-1, 1))),
        "light_dir": rng.uniform(0, 2 * math.pi), "light": rng.uniform(0.0, 0.55), "gain": rng.uniform(0.75, 1.2),
        "blur": rng.uniform(0.0, 1.3), "noise": rng.uniform(0.0, 6.0), "gray": bool(rng.random() < 0.2),
        "n_frames": n_frames,
    }


def render_clip(warper: ExpressionWarper, expression: str, p: dict, size: int, rng: np.random.Generator):
    """Yield the clip's BGR frames (``size × size``), onset → apex."""
    import cv2

    offsets = warper.offsets(expression, p["side"]) * p["intensity"] * STRENGTH
    base = warper.offsets("", face_units=p["morph"])
    image = new_background(warper.photo, rng) if p["background"] else None
    img_h, img_w = warper.photo.image.shape[:2]
    centre = warper.photo.landmarks.mean(0)
    n = p["n_frames"]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1
    ramp = xx * math.cos(p["light_dir"]) + yy * math.sin(p["light_dir"])
    light = (p["gain"] * (1.0 + p["light"] * ramp))[..., None]
    for t in range(n):
        u = t / max(1, n - 1)
        amount = _smoothstep((u - p["onset"]) / max(1e-6, p["apex"] - p["onset"]))
        face = warper.render(offsets, amount, MOUTH.get(expression), expression, p["side"], base, image)
        if p["flip"]:
            face = face[:, ::-1]
            cx = img_w - 1 - centre[0]
        else:
            cx = centre[0]
        roll = p["roll"][0] + (p["roll"][1] - p["roll"][0]) * u
        yaw = p["yaw"][0] + (p["yaw"][1] - p["yaw"][0]) * u
        drift = p["drift"][0] + (p["drift"][1] - p["drift"][0]) * u
        s = p["scale"] * size / img_w * 1.05
        m = cv2.getRotationMatrix2D((float(cx), float(centre[1])), float(roll), float(s))
        m[0, :] *= 1.0 - abs(yaw)  # a turned head looks narrower
        m[0, 2] += size / 2 - (m[0, 0] * cx + m[0, 1] * centre[1] + m[0, 2]) + drift[0] + yaw * size * 0.5
        m[1, 2] += size / 2 - (m[1, 0] * cx + m[1, 1] * centre[1] + m[1, 2]) + drift[1]
        frame = cv2.warpAffine(np.ascontiguousarray(face), m, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        frame *= light
        if p["blur"] > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), p["blur"])
        frame += rng.normal(0, p["noise"], frame.shape).astype(np.float32)
        frame = recolour(np.clip(frame, 0, 255).astype(np.uint8), p["hue"], p["sat"])
        if p["gray"]:
            frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        yield frame


def _faces_found(processor, path: Path, frames: int) -> bool:
    """Whether ``processor`` (the cache's face stage) keeps a face (``ok``) on every one of the clip's ``frames``."""
    from hac_runtime.media import open_source

    with open_source(path) as src:
        found = [ff.ok for ff in processor.process(src)]
    return len(found) == frames and all(found)


def _write_clip(path: Path, frames, fmt: str, fps: float) -> None:
    import cv2

    if fmt == "frames":
        tmp = path.parent / f".{path.name}.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(tmp / f"{i:03d}.png"), f)
        if path.exists():
            import shutil

            shutil.rmtree(path)
        tmp.rename(path)
        return
    with atomic_path(path) as tmp:
        tmp_mp4 = tmp.with_suffix(".mp4")
        writer = None
        try:
            for f in frames:
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, f.shape[1::-1])
                    if not writer.isOpened():
                        raise HacError(f"{path}: OpenCV cannot write mp4v video here")
                writer.write(f)
        finally:
            if writer is not None:
                writer.release()
        tmp_mp4.replace(tmp)


def split_identities(identities: list[str], rng: np.random.Generator, test_fraction: float = 0.2) -> dict[str, str]:
    """Identity → ``train`` / ``test``; at least one identity on each side."""
    ids = list(identities)
    rng.shuffle(ids)
    n_test = max(1, round(len(ids) * test_fraction)) if len(ids) > 1 else 0
    return {i: ("test" if j < n_test else "train") for j, i in enumerate(ids)}


def synthesize(out, clips: int = 140, seed: int = 0, frames: int = 12, size: int = 200, fmt: str = "mp4",
               photos=None, progress: bool = True, fps: float = 10.0) -> dict:
    """Write ``clips`` labelled synthetic clips (balanced over the seven expressions and the identities) to ``out``.

    Returns a summary ``{"out", "clips", "identities", "classes", "manifest", "faces_missing"}`` (the clips
    still without a kept face on some frame after ``MAX_TRIES`` draws).
    """
    if clips < 1:
        raise HacError(f"--clips must be >= 1, got {clips}")
    if frames < 2:
        raise HacError(f"--frames must be >= 2, got {frames}")
    if size < 96:
        raise HacError(f"--size must be >= 96 (faces must stay detectable), got {size}")
    if fmt not in FORMATS:
        raise HacError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = check_output_dir(Path(out), "synthetic clips")
    photo_list = load_photos(photos)
    warpers = [ExpressionWarper(p) for p in photo_list]
    identities = sorted({p.identity for p in photo_list})
    # the split is over the identities that get clips: a held-out identity with no clip would hold out nobody
    used = sorted({identities[(n // len(EXPRESSIONS)) % len(identities)] for n in range(clips)})
    split = split_identities(used, np.random.default_rng([seed, 1]))
    by_identity = {i: [w for w in warpers if w.photo.identity == i] for i in identities}
    from hac_runtime.faces import FaceProcessor
    from hac_runtime.progress import progress_bar

    faces = FaceProcessor(DEFAULT_DETECTOR, aligner="template", size=64)  # what hac-prepare keeps, small crops
    rows, missing = [], []
    with progress_bar("synthesizing clips", clips, enabled=progress) as bar:
        for n in range(clips):
            expression = EXPRESSIONS[n % len(EXPRESSIONS)]
            identity = identities[(n // len(EXPRESSIONS)) % len(identities)]
            crng = np.random.default_rng([seed, 2, n])
            warper = by_identity[identity][int(crng.integers(len(by_identity[identity])))]
            name = f"{identity}-{n:04d}" + (".mp4" if fmt == "mp4" else "")
            path = out / expression / name
            path.parent.mkdir(parents=True, exist_ok=True)
            for _attempt in range(MAX_TRIES):  # quality gate: the cache must keep every frame's face
                p = clip_params(crng, frames)
                _write_clip(path, list(render_clip(warper, expression, p, size, crng)), fmt, fps)
                if _faces_found(faces, path, frames):  # as written: the video's compression moves the scores
                    break
            else:  # kept (the class stays balanced); training leaves out the frames without a face
                missing.append(f"{expression}/{name}")
            rows.append({"path": f"{expression}/{name}", "label": expression, "subject": identity,
                         "split": split[identity], "frames": frames, "photo": warper.photo.name,
                         "intensity": round(p["intensity"], 3)})
            bar.advance()
    manifest = out / "manifest.csv"
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return {"out": str(out), "clips": len(rows), "identities": {i: split[i] for i in used},
            "classes": list(EXPRESSIONS), "manifest": str(manifest), "faces_missing": missing}
