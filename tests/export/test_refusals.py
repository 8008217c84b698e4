"""Bad input and wrong option combinations: one line, exit 2, before any work; parity failure: exit 1, marked failed."""
import json
import shutil
import subprocess
import sys

import cv2
import pytest
import torch

from hac_export.api import export
from hac_export.cli import export_main
from hac_export.registry import plan_export
from hac_runtime.engines import load_engine
from hac_runtime.errors import HacError


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return exit_info.value.code, err


def _one_line_error(code, err, *words):
    assert code == 2, err
    assert err.startswith("hac-export: error: ") and "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, err


def test_missing_checkpoint(tmp_path, capsys):
    _one_line_error(*_run([tmp_path / "nope.pt", "--out", tmp_path / "o"], capsys), "nope.pt", "not found")


def test_truncated_checkpoint(tiny_ckpt, tmp_path, capsys):
    bad = tmp_path / "cut.pt"
    bad.write_bytes(tiny_ckpt.read_bytes()[: tiny_ckpt.stat().st_size // 2])
    _one_line_error(*_run([bad, "--out", tmp_path / "o"], capsys), "cut.pt")
    assert not (tmp_path / "o").exists()


def test_foreign_checkpoint(tmp_path, capsys):
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    _one_line_error(*_run([foreign], capsys), "resnet.pt", "not a HAC checkpoint")


def test_unwritable_out(tiny_ckpt, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    _one_line_error(*_run([tiny_ckpt, "--out", blocker / "sub"], capsys), "cannot write")


def test_int8_without_calib(tiny_ckpt, capsys):
    _one_line_error(*_run([tiny_ckpt, "--int8"], capsys), "--int8 needs --calib")


def test_calibration_data_without_faces(tiny_ckpt, tmp_path, capsys):
    empty = tmp_path / "prepared"
    (empty / "clip000").mkdir(parents=True)
    (empty / "faces.jsonl").write_text("")
    _one_line_error(*_run([tiny_ckpt, "--int8", "--calib", empty, "--out", tmp_path / "o"], capsys),
                    "no aligned faces")
    assert not list((tmp_path / "o").glob("hac*"))


def test_calibration_pngs_not_from_hac_prepare_refused(tiny_ckpt, calib_dir, tmp_path, capsys):
    """Issue 13 #8: a folder of face-free PNGs (a real cat photo) was accepted as INT8 calibration."""
    from skimage import data

    cats = tmp_path / "cats" / "clip00"
    cats.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(cats / f"{i:05d}.png"), data.chelsea()[:, :, ::-1])
    _one_line_error(*_run([tiny_ckpt, "--int8", "--calib", cats.parent, "--out", tmp_path / "o"], capsys),
                    "1 of 1 folders of PNGs are not hac-prepare clips", "clip00")
    # a real hac-prepare clip whose faces were lost afterwards is refused the same way
    broken = tmp_path / "broken"
    shutil.copytree(calib_dir, broken)
    clip = next(p for p in sorted(broken.rglob(".done.json"))).parent
    next(iter(sorted(clip.glob("*.png")))).unlink()
    _one_line_error(*_run([tiny_ckpt, "--int8", "--calib", broken, "--out", tmp_path / "o"], capsys),
                    "not hac-prepare clips", clip.relative_to(broken).as_posix())
    assert not list((tmp_path / "o").glob("hac*"))


@pytest.mark.parametrize("argv, words", [
    (["--format", "pt2", "--fp16"], ["--fp16 applies to onnx, trt"]),
    (["--bf16"], ["--bf16 applies to aoti; --format onnx exports FP32 only"]),
    (["--format", "pt2,onnx", "--bf16"], ["--bf16 applies to aoti; --format onnx,pt2 exports FP32 only"]),
    (["--format", "tflite"], ["unknown tflite"]),
    (["--batch", "8:4:16"], ["MIN <= OPT <= MAX"]),
    (["--batch", "big"], ["--batch"]),
    (["--workspace", "2"], ["--workspace applies only to --format trt"]),
    (["--calib-method", "entropy"], ["--calib-method applies only with --int8"]),
])
def test_wrong_combinations(tiny_ckpt, capsys, argv, words):
    _one_line_error(*_run([tiny_ckpt, *argv], capsys), *words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_trt_without_gpu_exits_2_one_line(tiny_ckpt, tmp_path):
    out = subprocess.run([sys.executable, "-m", "hac_export", str(tiny_ckpt), "--format", "trt", "--fp16",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "CUDA GPU" in lines[0] and "pip install -e '.[gpu,trt-cu" in lines[0]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "tensorrt package (not installed)" in lines[0]
    assert not (tmp_path / "o").exists()  # refused before any work


def test_plan_table():
    plan = plan_export("pt2,onnx", fp16=True, batch="2:4:8")
    assert plan.formats == ("onnx", "pt2") and plan.batch == (2, 4, 8)
    assert plan.artifacts() == [("onnx", "fp32"), ("onnx", "fp16"), ("pt2", "fp32")]
    assert plan_export("onnx", batch="16").batch == (1, 16, 16)
    with pytest.raises(HacError):
        plan_export("onnx", batch="0")


def test_parity_failure_marks_artifact_failed(tiny_ckpt, tmp_path):
    out = tmp_path / "o"
    # an impossible tolerance: ORT never matches eager bit for bit
    report = export(tiny_ckpt, formats="onnx", batch="1:2:2", out=out,
                    tolerances={"fp32": {"atol": 0.0, "rtol": 0.0}}, verbose=False)
    assert [a["name"] for a in report.failed] == ["hac.onnx.failed"]
    line = report.failure()
    assert line.startswith("1 of 1 artifacts failed: hac.onnx.failed (max_abs ") and "parity.json" in line
    assert not (out / "hac.onnx").exists() and not (out / "hac.onnx.json").exists()
    manifest = json.loads((out / "hac.onnx.failed.json").read_text())
    assert manifest["status"] == "failed" and not manifest["parity"]["passed"]
    assert manifest["parity"]["failures"] and manifest["artifact"]["file"] == "hac.onnx.failed"
    assert json.loads((out / "parity.json").read_text())["artifacts"]["hac.onnx.failed"]["status"] == "failed"
    with pytest.raises(HacError, match=r"refused, failed parity at export \(max_abs .*, cosine .*, top-1 "):
        load_engine(out / "hac.onnx.failed")
    assert sorted(p.name for p in out.iterdir()) == ["hac.onnx.failed", "hac.onnx.failed.json", "parity.json"]
