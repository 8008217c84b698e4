"""End-to-end hac-run throughput on this machine: frames/s and a per-stage breakdown, 1 and 4 streams.

The model is the built-in default (the paper's ResNet50 configuration at 224 px, k = 5) exported to
INT8 ONNX (static QDQ, calibrated on hac-synth clips), like ``hac-bench``. The video is a real photo
(tests/data/obama.jpg) moving on a 640×480 canvas, 25 fps. Clip policy: sliding window, 2 s window,
1 s stride (a live stream), detection every 5 frames with landmark tracking in between.

Run: ``.venv/bin/python benchmarks/pipeline.py [--frames 300] [--streams 1,4] [--precision int8] [--analyse-every 1]``
Writes a Markdown table to stdout; benchmarks/pipeline.md records one run. ``--face-stage``: instead, the face
stage alone on one thread over the same frames (``MultiFaceStage``, detection on the frame itself every
``--detect-every``), CPU a frame and its parts, three rounds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def make_video(path: Path, frames: int) -> None:
    from fixtures_video import photo, write_face_video

    write_face_video(path, photo("obama.jpg"), n_frames=frames, fps=25.0, motion=("shift", "rotate", "scale"),
                     max_angle=6.0)


def artifact(work: Path, precision: str) -> Path:
    from hac_export.api import export
    from hac_export.bench.run import default_checkpoint
    from hac_export.parity_inputs import synthetic_clips

    name = {"fp32": "hac.onnx", "fp16": "hac.fp16.onnx", "int8": "hac.int8.onnx"}[precision]
    if not (work / name).exists():
        ckpt = default_checkpoint(work)
        calib = synthetic_clips(work, 224)
        export(ckpt, formats="onnx", int8=precision == "int8", fp16=precision == "fp16", calib=calib,
               batch="1:8:8", out=work, verbose=False)
    return work / name


class ThreadCpu:
    """CPU seconds per kind of thread over a block, from ``/proc/self/task`` (Linux): the pipeline's Python
    threads by name (source = the face stage, detect = its background detection, decode, infer) and the
    engine's own worker threads, which Python does not see ("engine workers and other"). Sampled every
    0.1 s, as threads end inside the block: a thread's last 0.1 s may be missed (a few ms a frame over a
    10 s run at most), and a thread id the OS reuses inside the block counts once."""

    KINDS = (("hac-source", "faces"), ("hac-detect", "background detection"), ("hac-decode", "decode"),
             ("hac-infer", "infer (calling thread)"))

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._last: dict[str, tuple[str, float]] = {}
        self._names: dict[str, str] = {}

    @staticmethod
    def _tasks() -> dict[str, tuple[str, float]]:
        tick, out = os.sysconf("SC_CLK_TCK"), {}
        for tid in os.listdir("/proc/self/task"):
            try:
                comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended just now
            out[tid] = (comm, (int(stat[11]) + int(stat[12])) / tick)
        return out

    def _poll(self):
        while True:
            self._names.update({str(t.native_id): t.name for t in threading.enumerate() if t.native_id})
            self._last.update(self._tasks())
            if self._stop.wait(0.1):
                return

    def __enter__(self):
        self._start = self._tasks()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="cpu-poll")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._last.update(self._tasks())
        for tid, (comm, cpu) in self._last.items():
            name = self._names.get(tid, comm)
            if name in ("cpu-poll", "MainThread"):
                continue
            kind = next((k for prefix, k in self.KINDS if name.startswith(prefix)),
                        "decode" if comm.startswith("av:") else "engine workers and other")
            self.seconds[kind] = self.seconds.get(kind, 0.0) + cpu - self._start.get(tid, (comm, 0.0))[1]


def run(model: Path, videos: list[Path], detect_every: int, analyse_every: int = 1) -> dict:
    from hac_runtime.pipeline import Pipeline

    t_open = time.perf_counter()
    with Pipeline(model, policy="window", window=2.0, stride=1.0, detect_every=detect_every,
                  analyse_every=analyse_every) as pipe:
        t0 = time.perf_counter()
        opened = t0 - t_open  # choosing the engine and loading the face models
        with ThreadCpu() as cpu:
            n = sum(1 for _ in pipe.run(videos))
        wall = time.perf_counter() - t0
        frames = sum(r.frames for r in pipe.reports)
        stages: dict[str, float] = {}
        for r in pipe.reports:
            for k, v in r.seconds.items():
                stages[k] = stages.get(k, 0.0) + v
        for k, v in pipe.seconds.items():
            stages[k] = stages.get(k, 0.0) + v
        return {"open": opened, "frames": frames, "results": n, "wall": wall, "fps": frames / wall, "stages": stages,
                "batches": pipe.batches, "cpu": cpu.seconds, "engine": pipe.choice.describe()}


def face_stage(video: Path, detect_every: int, rounds: int = 3) -> None:
    """The face stage's CPU a frame, one thread, no other work (``--face-stage``)."""
    import cv2

    from hac_runtime.faces import FaceProcessor
    from hac_runtime.faces.detectors import load_hog
    from hac_runtime.pipeline.faces import MultiFaceStage

    capture, frames = cv2.VideoCapture(str(video)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    load_hog()
    processor = FaceProcessor()
    for _ in range(rounds):
        stage = MultiFaceStage(processor, detect_every=detect_every)
        t0 = time.thread_time()
        faces = sum(len(stage.step(i, frame)[0]) for i, frame in enumerate(frames))
        cpu = time.thread_time() - t0
        parts = ", ".join(f"{k} {1e3 * v / len(frames):.2f}" for k, v in stage.seconds.items())
        print(f"{len(frames)} frames, {faces} faces: {1e3 * cpu / len(frames):.2f} ms of CPU a frame ({parts})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--precision", default="int8", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--detect-every", type=int, default=5)
    ap.add_argument("--analyse-every", type=int, default=1)
    ap.add_argument("--face-stage", action="store_true", help="the face stage alone, one thread (module doc)")
    ap.add_argument("--work", default=os.environ.get("HAC_BENCH_DIR", str(Path(tempfile.gettempdir()) / "hac-bench")))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    model = artifact(work, a.precision)
    video = work / f"obama_{a.frames}.mp4"
    if not video.exists():
        make_video(video, a.frames)
    if a.face_stage:
        face_stage(video, a.detect_every)
        return
    import onnxruntime
    import platform

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; onnxruntime {onnxruntime.__version__}; "
          f"{time.strftime('%Y-%m-%d')}; model {model.name}; video 640×480, {a.frames} frames; "
          f"detect every {a.detect_every}, analyse every {a.analyse_every}\n")
    print("| streams | open s | frames | wall s | frames/s (all streams) | clips | decode | detect | landmarks | track | quality | align | preprocess | infer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs, engines = [], []
    for s in [int(x) for x in a.streams.split(",")]:
        r = run(model, [video] * s, a.detect_every, a.analyse_every)
        runs.append((s, r))
        per = {k: 1e3 * v / r["frames"] for k, v in r["stages"].items()}
        cols = " | ".join(f"{per.get(k, 0.0):.1f}" for k in
                          ("decode", "detect", "landmarks", "track", "quality", "align", "preprocess", "infer"))
        print(f"| {s} | {r['open']:.1f} | {r['frames']} | {r['wall']:.1f} | **{r['fps']:.1f}** | {r['results']} | {cols} |")
        engines.append(f"{s} stream(s): {r['engine']}")
    print("\nopen s: Pipeline(...) itself (the engine and the face models loaded); wall s: its run over the frames. "
          "Stage columns: busy milliseconds per frame, summed over threads (stages overlap across threads, "
          "so they can add up to more than wall time per frame).")
    print("\nEngine (--engine auto): " + "; ".join(engines))
    kinds = [k for _, k in ThreadCpu.KINDS] + ["engine workers and other"]
    print("\nCPU milliseconds per frame, by thread (/proc/self/task); cores busy = all of them / wall:\n")
    print("| streams | " + " | ".join(kinds) + " | all | cores busy |")
    print("|---|" + "---|" * (len(kinds) + 2))
    for s, r in runs:
        total = sum(r["cpu"].values())
        cols = " | ".join(f"{1e3 * r['cpu'].get(k, 0.0) / r['frames']:.2f}" for k in kinds)
        print(f"| {s} | {cols} | **{1e3 * total / r['frames']:.2f}** | {total / r['wall']:.2f} |")


if __name__ == "__main__":
    main()
