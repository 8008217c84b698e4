"""Faces benchmark: per-frame cost and recall of each detector, landmarks, alignment and tracking on 640×480
frames; the box calibration the detectors use; hac-prepare's speed-up from parallel workers.

Frames: the real face photos of the tests (skimage's astronaut, tests/data) moving on a 640×480 canvas
(shift, rotation ±10°, scale ±15 %, brightness ±35 %), plus harder variants: dark (×0.35), small
(face ~45 px), rolled ±25°. Ground truth: the photo's own landmarks moved by the known frame matrix.

    .venv/bin/python benchmarks/faces.py                    # Markdown to stdout
    .venv/bin/python benchmarks/faces.py --out benchmarks/faces.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # fixtures_video: the tests' real photos and motion

PHOTOS = ("astronaut", "biden.jpg", "obama.jpg", "obama_rgba.png")
CONDITIONS = {
    "normal": {},
    "dark": {"gain": 0.35},
    "small": {"scale_range": (0.42, 0.5)},
    "rolled ±25°": {"max_angle": 25.0},
}


def machine() -> dict:
    import cv2
    import dlib

    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": cpu, "cores": os.cpu_count(), "load": load, "python": platform.python_version(),
            "opencv": cv2.__version__, "dlib": dlib.__version__, "numpy": np.__version__, "os": platform.platform(),
            "date": datetime.date.today().isoformat()}


def material(n_frames: int):
    """{condition: [(frame, true landmarks)]} over all photos."""
    import cv2

    from fixtures_video import photo, render_frames
    from hac_runtime.faces import LandmarkPredictor, make_detector
    from hac_runtime.faces.align import apply_transform

    hog, pred = make_detector("hog"), LandmarkPredictor()
    out = {}
    for cond, opts in CONDITIONS.items():
        opts = dict(opts)
        gain = opts.pop("gain", 1.0)
        frames = []
        for name in PHOTOS:
            img = photo(name)
            ref = pred.predict(img, hog.detect(img)[0]).astype(np.float64)
            for frame, m in render_frames(img, n_frames, **opts):
                if gain != 1.0:
                    frame = cv2.convertScaleAbs(frame, alpha=gain)
                frames.append((frame, apply_transform(m, ref)))
        out[cond] = frames
    return out


def iou(a, b) -> float:
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1e3


def ms(samples) -> str:
    s = sorted(samples)
    return f"{statistics.median(s):.1f} / {s[int(0.9 * (len(s) - 1))]:.1f}"


def bench_detectors(mat, cnn_frames: int) -> list[str]:
    from hac_runtime.faces import box_from_landmarks, make_detector

    rows = ["| detector | ms / frame, median / p90 (normal) | " + " | ".join(f"recall {c}" for c in CONDITIONS)
            + " | false detections / frame |", "|---" * (3 + len(CONDITIONS)) + "|"]
    for name in ("hog", "haar", "cnn"):
        det = make_detector(name)
        times, recall, false = [], {}, []
        for cond, frames in mat.items():
            if name == "cnn":  # slow on a CPU: a few frames per photo
                step = max(1, len(frames) // (cnn_frames * len(PHOTOS)))
                frames = frames[::step]
            hits = 0
            for frame, truth in frames:
                boxes, t = timed(det.detect, frame)
                if cond == "normal":
                    times.append(t)
                gt = box_from_landmarks(truth)
                matched = [b for b in boxes if iou(b, gt) > 0.5]
                hits += bool(matched)
                false.append(len(boxes) - len(matched[:1]))
            recall[cond] = f"{hits}/{len(frames)}"
        rows.append(f"| {name} | {ms(times)} | " + " | ".join(recall[c] for c in CONDITIONS)
                    + f" | {np.mean(false):.2f} |")
    return rows


def bench_new_face_score(mat, video_frames: int) -> list[str]:
    """HOG's scores of real faces and false boxes per condition, and the face tracks ``MultiFaceStage`` makes
    on longer moving videos with HOG's own threshold (0) against its ``new_face_score``."""
    from fixtures_video import group_photo, photo, render_frames
    from hac_runtime.faces import FaceProcessor, box_from_landmarks, make_detector
    from hac_runtime.pipeline.faces import MultiFaceStage

    hog = make_detector("hog")
    tau = hog.new_face_score
    rows = [f"Per frame (IoU > 0.4 with the true face; HOG's own threshold is 0, its new-face score {tau:g}):", "",
            "| condition | face found | its score ≥ " + f"{tau:g} | false boxes / frame | of them ≥ {tau:g} | "
            "lowest face score | highest false score |", "|---|---|---|---|---|---|---|"]
    for cond, frames in mat.items():
        found = strong = false = false_strong = 0
        lowest, highest = [], []
        for frame, truth in frames:
            gt = box_from_landmarks(truth)
            scored = hog.detect_scored(frame)
            face = [s for b, s in scored if iou(b, gt) > 0.4]
            others = [s for b, s in scored if iou(b, gt) <= 0.4]
            found += bool(face)
            strong += bool(face) and max(face) >= tau
            lowest += face[:1]
            false, false_strong = false + len(others), false_strong + sum(s >= tau for s in others)
            highest += others
        rows.append(f"| {cond} | {found}/{len(frames)} | {strong}/{len(frames)} | {false / len(frames):.2f} | "
                    f"{false_strong / len(frames):.2f} | {min(lowest):.2f} | "
                    + (f"{max(highest):.2f} |" if highest else "– |"))
    img, truth = group_photo()
    videos = {"astronaut (640×480)": ([f for f, _ in render_frames(photo("astronaut"), video_frames)], 1),
              "group photo (1280×720, six faces)": ([f for f, _ in render_frames(img, video_frames,
                                                                                size=(1280, 720))], len(truth))}
    rows += ["", f"Faces of `MultiFaceStage` on {video_frames} moving frames (detect every 5, tracking between): "
             "tracks started (tentative ones included) and faces (tracks confirmed by the next frame's "
             "detection), with HOG's own threshold (0) and the default:", "",
             "| video | real faces | background detection | started, 0 | faces, 0 | started, " + f"{tau:g} | "
             f"faces, {tau:g} | first frame of each face, {tau:g} |", "|---|---|---|---|---|---|---|---|"]
    for label, (frames, real) in videos.items():
        for background in (False, True):
            cells = []
            for score in (0.0, None):
                stage = MultiFaceStage(FaceProcessor(new_face_score=score), size=64, detect_every=5,
                                       background_detection=background)
                started, faces = set(), {}
                for i, bgr in enumerate(frames):
                    for f in stage.step(i, bgr)[0]:
                        started.add(f.track)
                        if f.confirmed:
                            faces.setdefault(f.track, i)
                stage.close()
                cells += [str(len(started)), str(len(faces))]
            rows.append(f"| {label} | {real} | {'yes' if background else 'no'} | {' | '.join(cells)} | "
                        f"{', '.join(str(v) for v in sorted(faces.values()))} |")
    return rows + [""] + bench_one_face(mat)


def bench_one_face(mat) -> list[str]:
    """``FaceProcessor.process`` (``hac-prepare --faces largest``, hac-train's cache) per condition: frames
    given a face, and of them how many are not the true face, with HOG's own threshold (0) and the default."""
    from hac_runtime.faces import FaceProcessor, box_from_landmarks, make_detector

    tau = make_detector("hog").new_face_score
    n = len(PHOTOS)
    rows = [f"One face per clip (`FaceProcessor.process`: `hac-prepare --faces largest`, hac-train's cache; "
            f"{n} clips per condition, detect every frame): frames given a face, of them not on the true face "
            "(IoU ≤ 0.4), and faces the next frame's detection did not confirm (`unconfirmed`):", "",
            "| condition | frames | faces, 0 | not the face, 0 | faces, " + f"{tau:g} | not the face, {tau:g} | "
            f"unconfirmed, {tau:g} |", "|---|---|---|---|---|---|---|"]
    for cond, frames in mat.items():
        per = len(frames) // n
        cells = []
        for score in (0.0, None):
            proc, faces, wrong, unconfirmed = FaceProcessor(new_face_score=score, size=64), 0, 0, 0
            for c in range(n):
                clip = frames[c * per:(c + 1) * per]
                for ff, (_, truth) in zip(proc.process(enumerate(f for f, _ in clip)), clip):
                    if ff.box is not None:
                        faces += 1
                        wrong += iou(ff.box, box_from_landmarks(truth)) <= 0.4
                unconfirmed += getattr(proc, "unconfirmed", 0)
            cells += [str(faces), str(wrong)] + ([str(unconfirmed)] if score is None else [])
        rows.append(f"| {cond} | {len(frames)} | {' | '.join(cells)} |")
    return rows


def bench_stages(mat) -> list[str]:
    from hac_runtime.faces import (FaceProcessor, LandmarkPredictor, SequenceAligner, TemplateAligner,
                                   box_from_landmarks, interocular)

    frames = mat["normal"]
    pred = LandmarkPredictor()
    lm_t, err = [], []
    for frame, truth in frames:
        lm, t = timed(pred.predict, frame, box_from_landmarks(truth))
        lm_t.append(t)
        err.append(np.linalg.norm(lm - truth, axis=1).mean() / interocular(truth))
    rows = ["| stage (640×480 frame, one face) | ms, median / p90 |", "|---|---|",
            f"| 68 landmarks (dlib ERT), given a box | {ms(lm_t)} |"]
    for aligner in (SequenceAligner(224), TemplateAligner(224)):
        t_al = [timed(aligner.align, f, truth)[1] for f, truth in frames]
        rows.append(f"| align to 224×224, {aligner.name} | {ms(t_al)} |")
    p = FaceProcessor()
    t_tr = []
    for (f0, tr0), (f1, _) in zip(frames[:-1], frames[1:]):
        _, t = timed(p.track, f1, tr0.astype(np.float32))
        t_tr.append(t)
    rows.append(f"| track one face from its last landmarks (local HOG search + landmarks) | {ms(t_tr)} |")
    for every in (1, 5, 10):
        p = FaceProcessor(detect_every=every)
        per = []
        for i in range(0, len(frames), 24):
            seq = list(enumerate(f for f, _ in frames[i:i + 24]))
            p.reset()
            for idx, f in seq:
                per.append(timed(p.step, idx, f)[1])
        rows.append(f"| FaceProcessor step, hog, detect every {every} | {ms(per)} |")
    rows.append("")
    rows.append(f"Landmark error against the moved photo landmarks: mean {np.mean(err):.3f}, "
                f"max {np.max(err):.3f} inter-ocular distances.")
    return rows


def calibrate(mat) -> list[str]:
    """Box offsets of Haar and CNN relative to dlib HOG; HOG box from the landmarks' extent."""
    from hac_runtime.faces import box_from_landmarks, make_detector
    from hac_runtime.faces.detectors import FaceDetector

    frames = mat["normal"][::2]
    hog = make_detector("hog")
    rows = ["| detector | Δx / w | Δy / w | size ratio | n |", "|---|---|---|---|---|"]
    for name in ("haar", "cnn"):
        det = make_detector(name)
        saved, det.box_adjust = det.box_adjust, FaceDetector.box_adjust  # raw boxes
        d = []
        for frame, truth in frames[:: 3 if name == "cnn" else 1]:
            h = [b for b in hog.detect(frame) if iou(b, box_from_landmarks(truth)) > 0.5]
            o = [b for b in det.detect(frame) if h and iou(b, h[0]) > 0.3]
            if h and o:
                (hx, hy, hw, hh), (x, y, w, _) = h[0], o[0]
                d.append(((hx + hw / 2 - x - w / 2) / w, (hy + hh / 2 - y - w / 2) / w, hw / w))
        det.box_adjust = saved
        m = np.mean(d, 0)
        rows.append(f"| {name} → hog | {m[0]:+.3f} | {m[1]:+.3f} | {m[2]:.3f} | {len(d)} |")
    ext = []
    for frame, truth in frames:
        h = [b for b in hog.detect(frame) if iou(b, box_from_landmarks(truth)) > 0.5]
        if h:
            lo, hi = truth.min(0), truth.max(0)
            x, y, w, hh = h[0]
            ext.append(((y + hh / 2 - (lo[1] + hi[1]) / 2) / (hi[1] - lo[1]), w / np.sqrt(np.prod(hi - lo))))
    m = np.mean(ext, 0)
    rows += ["", f"HOG box from landmarks: centre Δy = {m[0]:+.3f} · extent height, side = {m[1]:.3f} · "
                 f"√(extent area) (n = {len(ext)})."]
    return rows


def _noop():
    return os.getpid()


def worker_startup() -> float:
    """Seconds until a spawned hac-prepare worker (imports, dlib models) has run one task."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from hac_runtime.prepare.pool import _worker_init

    ctx = mp.get_context("spawn")
    t = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init,
                             initargs=({"detector": "hog", "aligner": "sequence", "size": 224, "detect_every": 1},
                                       ctx.Queue())) as pool:
        pool.submit(_noop).result()
        return time.perf_counter() - t


def bench_prepare(n_clips: int, n_frames: int) -> list[str]:
    from fixtures_video import photo, write_face_video
    from hac_runtime.prepare import prepare

    rows = [f"Worker start-up (spawn, imports, dlib models): {worker_startup():.1f} s.", "",
            "| clips × frames | workers | wall s | frames / s |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        clips = []
        for i in range(n_clips):
            clips.append(d / f"clip{i}.mp4")
            write_face_video(clips[-1], photo(PHOTOS[i % len(PHOTOS)]), n_frames=n_frames)
        for jobs in ([clips[0]], clips):
            for workers in (1, 2):
                t = time.perf_counter()
                s = prepare(jobs, d / f"out{len(jobs)}_{workers}", workers=workers, progress=False)
                wall = time.perf_counter() - t
                rows.append(f"| {len(jobs)} × {n_frames} | {workers} | {wall:.1f} | {s.frames / wall:.0f} |")
    return rows


def bench_real() -> list[str]:
    """Real multi-face and non-frontal faces: detector recall on a 720p group photo, which detector finds a
    turned head, and the alignment quality (``faces.quality``) of every real face the tests hold."""
    import cv2
    from skimage import data

    from fixtures_video import GROUP, group_photo, photo
    from hac_runtime.faces import FaceProcessor, make_detector

    img, truth = group_photo()
    rows = ["Group photo: 1280×720, six real faces side by side, 120 → 52 px wide (`fixtures_video.group_photo`: "
            "obama, biden, astronaut, hopper, obama2, and obama again further back). A face counts when a box "
            "overlaps it with IoU > 0.5.", "",
            "| detector | detection size | upsample | faces found | false boxes | ms |", "|---|---|---|---|---|---|"]
    for name, side, up in (("hog", 640, 0), ("hog", 640, 1), ("hog", 1280, 0), ("haar", 640, 0), ("haar", 1280, 0),
                           ("cnn", 640, 0), ("cnn", 640, 1)):
        det = make_detector(name, max_side=side, upsample=up)
        found, t = timed(det.detect, img)
        hits = sum(any(iou(b, tb) > 0.5 for b in found) for tb in truth)
        false = sum(1 for b in found if max(iou(b, tb) for tb in truth) <= 0.5)
        default = " (default)" if name == "hog" and side == make_detector("hog").max_side and up == 0 else ""
        rows.append(f"| {name}{default} | {side} | {up} | {hits}/{len(GROUP)} | {false} | {t:.0f} |")
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    rows += ["", "Non-frontal and cut faces (found by: detectors that box the face at their default size):", "",
             "| photo | found by | quality | frontal score | share outside | yaw ° | ok |", "|---|---|---|---|---|---|---|"]
    shots = {"astronaut": photo("astronaut"), "biden.jpg": photo("biden.jpg"), "obama.jpg": photo("obama.jpg"),
             "obama2.jpg (turned a little)": photo("obama2.jpg"),
             "obama_partial_face.jpg (cut by the edge)": photo("obama_partial_face.jpg"),
             "skimage camera (three-quarter view)": camera}
    for label, im in shots.items():
        by = [n for n in ("hog", "haar", "cnn") if make_detector(n).detect(im)]
        proc = FaceProcessor(detector=by[0] if by else "cnn")
        f = proc.step(0, im)
        q = f.quality
        cells = (f"{q.quality:.2f} | {q.frontal:+.2f} | {q.outside:.2f} | {q.yaw:.0f} | {'yes' if f.ok else '**no**'}"
                 if q else "– | – | – | – | –")
        rows.append(f"| {label} | {', '.join(by) or 'none'} | {cells} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames per photo and condition")
    ap.add_argument("--cnn-frames", type=int, default=4, help="frames per photo and condition for dlib CNN")
    ap.add_argument("--clips", type=int, default=4, help="clips for the hac-prepare run")
    ap.add_argument("--clip-frames", type=int, default=60)
    ap.add_argument("--only", choices=("faces", "prepare", "real", "scores"), help="run one part only")
    ap.add_argument("--video-frames", type=int, default=250, help="frames of the moving videos (--only scores)")
    ap.add_argument("--out", type=Path, help="write the Markdown here too")
    args = ap.parse_args()
    import cv2

    info = machine()
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores (load average {info['load']:.1f} at the start); "
             f"{info['os']}; Python {info['python']}, "
             f"OpenCV {info['opencv']}, dlib {info['dlib']}, NumPy {info['numpy']}; {info['date']}. "
             f"OpenCV threads: {cv2.getNumThreads()}.", ""]
    if args.only in (None, "real"):
        lines += ["### Real multi-face and non-frontal faces", ""]
        lines += bench_real()
        lines += [""]
    if args.only in (None, "scores"):
        lines += ["### Which detections may start a face (`FaceDetector.new_face_score`)", ""]
        lines += bench_new_face_score(material(args.frames), args.video_frames)
        lines += [""]
    if args.only in (None, "faces"):
        mat = material(args.frames)
        lines += [f"### Detectors on 640×480 ({len(mat['normal'])} frames per condition; CNN: every few)", ""]
        lines += bench_detectors(mat, args.cnn_frames)
        lines += ["", "### Landmarks, alignment, tracking", ""]
        lines += bench_stages(mat)
        lines += ["", "### Box calibration (detector boxes → the landmark predictor's HOG convention)", ""]
        lines += calibrate(mat)
        lines += [""]
    if args.only in (None, "prepare"):
        lines += [f"### hac-prepare: serial vs parallel workers (load average now {os.getloadavg()[0]:.1f})", ""]
        lines += bench_prepare(args.clips, args.clip_frames)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
