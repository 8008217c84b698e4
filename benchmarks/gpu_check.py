"""One prepared GPU check (issue 17): every GPU path of the toolkit in one call, figures into ``gpu.md``.

    bash benchmarks/gpu_check.sh            # on a CUDA machine: ResNet50 default model, writes benchmarks/gpu.md
    bash benchmarks/gpu_check.sh --dry      # anywhere: the same steps on the CPU with a tiny model (CI runs it)

Steps, each timed and recorded (a failed step is recorded with its error; the others still run):
machine and versions; ``pytest -m gpu``; the torch engines on the device (pt2 and AOTInductor, batch 1 and
16, parity from the export); the GPU face warp against OpenCV on a real photo; one AMP training step (bf16
where native, FP16 + GradScaler); ``hac-bench --engine torch --batch 1,16``; the pipeline on a 640×480 video
with the device engine. Ends with a one-line verdict. ``--dry`` writes to ``--out`` (default: a temporary
file), never over the committed ``gpu.md``: GPU figures come only from a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent


class Check:
    def __init__(self, device: str, dry: bool, work: Path):
        self.device, self.dry, self.work = device, dry, work
        self.steps: list[dict] = []

    def step(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            figures = fn() or {}
            self.steps.append({"step": name, "ok": True, "figures": figures})
        except Exception as e:  # noqa: BLE001 - recorded; the next step still runs
            self.steps.append({"step": name, "ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                               "trace": traceback.format_exc(limit=3)})
        self.steps[-1]["seconds"] = round(time.perf_counter() - t0, 1)
        mark = "ok" if self.steps[-1]["ok"] else f"FAILED ({self.steps[-1]['error']})"
        print(f"gpu_check: {name}: {mark} [{self.steps[-1]['seconds']} s]", flush=True)


def machine(device: str) -> dict:
    import torch

    facts = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
             "torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        facts["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)
    for mod in ("tensorrt", "onnxruntime"):
        try:
            m = __import__(mod)
            facts[mod] = m.__version__
            if mod == "onnxruntime":
                facts["ort_providers"] = m.get_available_providers()
        except ImportError:
            facts[mod] = None
    return facts


def make_checkpoint(work: Path, dry: bool) -> Path:
    import torch

    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import save_checkpoint
    from hac_train.model import HACConfig, HACNet

    torch.manual_seed(0)
    backbone, size, k = ("resnet18", 64, 3) if dry else ("resnet50", 224, 5)
    model = HACNet(HACConfig(backbone=backbone, num_classes=7, k=k)).eval()
    classes = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
    return save_checkpoint(work / "ckpt.pt", model, classes, Preprocess(size, k))


def torch_engines(c: Check, ckpt: Path) -> dict:
    import numpy as np

    from hac_export.api import export
    from hac_runtime.engines import load_engine, read_manifest

    # --dry: FP32 only; the mixed FP16/BF16 AOTInductor packages compile on a CPU too but take a minute each,
    # and tests/export/test_pt2.py already builds and checks them there
    report = export(ckpt, formats="pt2,aoti", fp16=not c.dry, bf16=not c.dry, include_fp32=True, batch="1:8:16",
                    out=c.work / "engines", verbose=False)
    out = {"artifacts": {a["name"]: a["status"] for a in report.artifacts}}
    for a in report.artifacts:
        if a["path"] is None:
            out[a["name"]] = {"error": a.get("error")}
            continue
        m = read_manifest(a["path"])
        row = {"parity_max_abs": m["parity"]["max_abs"], "parity_cosine_min": m["parity"].get("cosine_min"),
               "parity_device": m["parity"].get("device"), "builder": m["builder"]}
        graphs = (False, True) if c.device == "cuda" else (False,)
        for graph in graphs:
            with load_engine(a["path"], "torch", c.device, require_passed=False, cuda_graph=graph) as e:
                tag = "graph_" if graph else ""
                row[f"{tag}providers"] = e.providers
                for b in (1, 16):
                    x = np.random.default_rng(0).standard_normal((b, *e.input_shape[1:])).astype(np.float32)
                    e.infer(x)
                    t0 = time.perf_counter()
                    n = 3 if c.dry else 20
                    for _ in range(n):
                        e.infer(x)
                    row[f"{tag}batch{b}_ms"] = round((time.perf_counter() - t0) / n * 1000, 2)
                    if e.stream is not None:  # CUDA events on the engine's stream
                        row[f"{tag}batch{b}_stages_ms"] = {k: round(v, 3) for k, v in e.infer_timed(x)[1].items()}
        out[a["name"]] = row
    return out


def warp(c: Check) -> dict:
    import cv2
    import numpy as np
    import torch

    from fixtures_video import photo
    from hac_runtime.faces import LandmarkPredictor, make_aligner, make_detector
    from hac_runtime.pipeline.gpu import TorchFaceWarper

    img = photo("obama.jpg")
    box = make_detector("hog").detect(img)[0]
    lm = LandmarkPredictor().predict(img, box)
    aligner = make_aligner("template", 112)
    ref = cv2.cvtColor(aligner.align(img, lm), cv2.COLOR_BGR2RGB).astype(int)
    w = TorchFaceWarper(112, c.device)
    got = w.warp(w.upload(img), aligner.matrix(lm))
    if c.device == "cuda":
        torch.cuda.synchronize()
    diff = np.abs(ref - got.cpu().numpy().astype(int))
    if diff.mean() >= 0.6:
        raise AssertionError(f"GPU warp differs from OpenCV: mean {diff.mean():.2f}")
    return {"mean_abs_diff": round(float(diff.mean()), 3), "p99_abs_diff": float(np.percentile(diff, 99))}


def amp_step(c: Check) -> dict:
    import torch

    from hac_train.model import HACConfig, HACNet

    dev = torch.device(c.device)
    out = {}
    dtypes = [torch.bfloat16] if dev.type == "cpu" else [torch.bfloat16, torch.float16]
    for dtype in dtypes:
        if dev.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
            out["bf16"] = "not native on this GPU (FP16 + GradScaler is what hac-train uses here)"
            continue
        torch.manual_seed(0)
        model = HACNet(HACConfig(backbone="resnet18", num_classes=7, k=3)).to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
        x = torch.randn(4, 3, 3, 64, 64, device=dev)
        y = torch.randint(0, 7, (4,), device=dev)
        with torch.autocast(device_type=dev.type, dtype=dtype):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if not torch.isfinite(loss):
            raise AssertionError(f"{dtype}: loss {loss.item()}")
        out[str(dtype).replace("torch.", "")] = {"loss": round(loss.item(), 4), "grad_scaler": dtype == torch.float16}
    return out


def bench(c: Check, ckpt: Path) -> dict:
    path = c.work / "bench.json"
    args = [str(BIN / "hac-bench"), str(ckpt), "--engine", "torch", "--batch", "1,2" if c.dry else "1,16",
            "--json", str(path), "--out", str(c.work / "bench")]
    if c.dry:
        args += ["--seconds", "0.2", "--warmup", "0"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"hac-bench exit {p.returncode}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")
    rows = json.loads(path.read_text())["results"]
    out = {f"{r['engine']}/{r['format']}/{r['precision']}/b{r['batch']}":
           {k: r.get(k) for k in ("status", "p50_ms", "clips_per_s", "speedup_vs_eager", "device_p50_ms",
                                  "h2d_p50_ms", "d2h_p50_ms", "peak_fraction")} for r in rows}
    fp16 = out.get("torch/aoti/fp16/b16", {}).get("speedup_vs_eager")
    if fp16 is not None:  # issue 17's goal: AOTInductor FP16 ≥ 5× eager FP32 at batch 16
        out["goal_aoti_fp16_b16_vs_eager"] = {"speedup": fp16, "goal": 5.0, "met": fp16 >= 5.0}
    return out


def pipeline(c: Check) -> dict:
    from fixtures_video import photo, write_face_video
    from hac_runtime.pipeline import Pipeline

    video = c.work / "face640.mp4"
    write_face_video(video, photo("obama.jpg"), n_frames=40 if c.dry else 250, size=(640, 480), fps=25.0)
    artifact = c.work / "engines" / "hac.pt2"
    t0 = time.perf_counter()
    with Pipeline(artifact, engine="torch", device=c.device) as pipe:
        results = list(pipe.run([video]))
        frames = pipe.reports[0].frames
        gpu_pre = pipe.gpu_preprocess
    s = time.perf_counter() - t0
    return {"frames": frames, "results": len(results), "fps": round(frames / s, 1), "gpu_preprocess": gpu_pre}


def pytest_gpu(c: Check) -> dict:
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(f"pytest -m gpu: {last}")
    return {"summary": last}


def write_md(path: Path, facts: dict, steps: list[dict], verdict: str) -> None:
    lines = ["# GPU check (`benchmarks/gpu_check.sh`)", "",
             "Written by the script; figures from one run on the machine below. " +
             ("**Dry run on a CPU** (tiny model): it proves the script runs, not GPU speed." if facts["device"] != "cuda"
              else "Measured on the GPU named below."), "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += ["", "## Steps", ""]
    for s in steps:
        lines.append(f"### {s['step']} — {'ok' if s['ok'] else 'FAILED'} ({s['seconds']} s)")
        lines.append("")
        lines.append("```json")
        lines.append(json.dumps(s["figures"] if s["ok"] else {"error": s["error"]}, indent=2))
        lines.append("```")
        lines.append("")
    lines += ["## Verdict", "", verdict, ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true", help="run every step on the CPU with a tiny model")
    ap.add_argument("--out", type=Path, help="where to write the report [default: benchmarks/gpu.md; --dry: a temp file]")
    args = ap.parse_args(argv)
    import torch

    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA GPU here (torch.cuda.is_available() is False); use --dry on a CPU",
              file=sys.stderr)
        return 2
    device = "cpu" if args.dry else "cuda"
    work = Path(tempfile.mkdtemp(prefix="hac-gpu-check-"))
    out = args.out or (work / "gpu.md" if args.dry else ROOT / "benchmarks" / "gpu.md")
    t0 = time.perf_counter()
    c = Check(device, args.dry, work)
    facts = machine(device)
    ckpt = make_checkpoint(work, args.dry)
    c.step("pytest -m gpu", lambda: pytest_gpu(c))
    c.step("torch engines (pt2, AOTInductor)", lambda: torch_engines(c, ckpt))
    c.step("GPU face warp vs OpenCV", lambda: warp(c))
    c.step("AMP training step", lambda: amp_step(c))
    c.step("hac-bench --engine torch", lambda: bench(c, ckpt))
    c.step("pipeline, 640x480 video", lambda: pipeline(c))
    failed = [s["step"] for s in c.steps if not s["ok"]]
    total = time.perf_counter() - t0
    verdict = (f"gpu_check: {'DRY RUN ' if args.dry else ''}{'OK' if not failed else 'FAILED'}: "
               f"{len(c.steps) - len(failed)}/{len(c.steps)} steps passed in {total:.0f} s on "
               f"{facts.get('gpu', 'the CPU')}" + (f" (failed: {', '.join(failed)})" if failed else ""))
    write_md(out, facts, c.steps, verdict)
    print(verdict)
    print(f"gpu_check: report {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
