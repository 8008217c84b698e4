"""Soak: ``hac-run`` on a long video made from real face photos, with both clip policies; RSS sampled.

The video: real photos (Obama, Biden — ``tests/data``, see its LICENSE — and skimage's astronaut) moving in
turn, 320×240 MJPG at 25 fps, ``--minutes`` long (a 30 s loop repeated). Each policy runs in its own ``hac-run``
process; its resident memory (VmRSS, from /proc) is sampled every second. Flat means: after the warm-up the
largest and smallest samples differ by a few MB and the trend (least squares) is near zero.

    .venv/bin/python benchmarks/soak.py --model engines/hac.int8.onnx --minutes 10 --json benchmarks/soak.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_video(path: Path, minutes: float, fps: float = 25.0) -> int:
    import cv2

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_video import photo, render_frames

    loop = []
    for name in ("obama.jpg", "biden.jpg", "astronaut"):
        loop += [f for f, _ in render_frames(photo(name), int(10 * fps), size=(320, 240))]
    n = int(minutes * 60 * fps)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for i in range(n):
        w.write(loop[i % len(loop)])
    w.release()
    return n


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(video: Path, model: str, policy: str, out: Path, warmup_s: float) -> dict:
    cmd = [str(Path(sys.executable).with_name("hac-run")), str(video), "--model", model, "--policy", policy,
           "--out", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        r = rss_mb(proc.pid)
        if r is not None:
            samples.append((time.monotonic() - t0, r))
        time.sleep(1.0)
    err = proc.stderr.read()
    wall = time.monotonic() - t0
    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    if len(samples) == 0:
        raise SystemExit(f"hac-run --policy {policy} exited {proc.returncode} before a sample: {err.strip()[-500:]}")
    warmup_s = min(warmup_s, 0.25 * float(t.max()))  # a short run: its first quarter is the warm-up
    steady = m[t >= warmup_s]
    ts = t[t >= warmup_s]
    slope = float(np.polyfit(ts, steady, 1)[0] * 60) if len(steady) > 2 else None
    lines = sum(1 for _ in open(out)) if out.exists() else 0
    return {"policy": policy, "exit": proc.returncode, "wall_s": round(wall, 1), "results": lines,
            "samples": len(samples), "rss_peak_mb": round(float(m.max()), 1),
            "rss_after_warmup": {"min_mb": round(float(steady.min()), 1), "max_mb": round(float(steady.max()), 1),
                                 "spread_mb": round(float(steady.max() - steady.min()), 1),
                                 "trend_mb_per_min": None if slope is None else round(slope, 3)},
            "stderr_tail": err.strip().splitlines()[-2:], "series": [[round(a, 1), round(b, 1)] for a, b in samples]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--work", default="/tmp/hac-soak")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of each run left out of the flatness")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    video = work / f"soak-{args.minutes:g}min.avi"
    if not video.exists():
        frames = make_video(video, args.minutes)
        print(f"wrote {video}: {frames} frames", flush=True)
    runs = []
    for policy in ("track", "window"):
        r = soak(video, args.model, policy, work / f"{policy}.jsonl", args.warmup)
        print({k: v for k, v in r.items() if k != "series"}, flush=True)
        runs.append(r)
    doc = {"video": {"path": str(video), "minutes": args.minutes, "fps": 25, "size": [320, 240]},
           "model": args.model, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
