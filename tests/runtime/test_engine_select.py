"""``--engine auto``: every engine/artifact that can run here is opened, timed, and the fastest kept."""
import json
import shutil

import numpy as np
import pytest

from hac_runtime.engines import manifest_path
from hac_runtime.engines.select import choose_engine
from hac_runtime.errors import HacError


def _copy(artifacts, names, dst):
    dst.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(artifacts / name, dst / name)
        shutil.copy(manifest_path(artifacts / name), manifest_path(dst / name))
    return dst


def _edit_manifest(artifact, **changes):
    path = manifest_path(artifact)
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def test_one_artifact_runs_on_its_only_engine(artifacts):
    choice = choose_engine(artifacts / "hac.onnx", engine="ort")
    with choice.engine as engine:
        assert engine.kind == "ort" and engine.device == "cpu"
        assert choice.chosen.ms is None and len(choice.candidates) == 1
        assert choice.describe() == "hac.onnx on ort/cpu (the only engine for it here)"


def test_export_folder_keeps_the_measured_fastest(artifacts):
    choice = choose_engine(artifacts, seconds=0.2)
    with choice.engine as engine:
        assert sorted({c.artifact.name for c in choice.candidates}) == ["hac.onnx", "hac.pt2"]
        assert all(c.ms > 0 and c.error is None for c in choice.candidates)
        assert choice.chosen.ms == min(c.ms for c in choice.candidates)
        assert engine.artifact == choice.chosen.artifact
        logits = engine.infer(np.zeros((2, 3, 3, 64, 64), np.float32))
        assert logits.shape == (2, 3)
        other = next(c for c in choice.candidates if c is not choice.chosen)
        line = choice.describe()
        assert f"{choice.chosen.label}, fastest at" in line and f"vs {other.label}" in line


def test_folder_filtered_by_engine_and_precision(artifacts, tmp_path):
    choice = choose_engine(artifacts, engine="torch")
    with choice.engine as engine:
        assert engine.kind == "torch" and choice.chosen.artifact.name == "hac.pt2" and choice.chosen.ms is None
    with pytest.raises(HacError, match="no artifact that passed its parity check runs here as int8"):
        choose_engine(artifacts, precision="int8")
    with pytest.raises(HacError, match="no exported artifact"):
        choose_engine(tmp_path)


def test_folder_skips_failed_and_foreign_json(artifacts, tmp_path):
    folder = _copy(artifacts, ["hac.onnx", "hac.pt2"], tmp_path / "out")
    _edit_manifest(folder / "hac.pt2", status="failed")
    (folder / "notes.json").write_text('{"hello": 1}')
    (folder / "broken.json").write_text("{not json")
    choice = choose_engine(folder)
    with choice.engine:
        assert {c.artifact.name for c in choice.candidates} == {"hac.onnx"}
        assert "skipped hac.pt2: " in choice.describe()


def test_folder_of_two_different_models_is_refused(artifacts, tmp_path):
    folder = _copy(artifacts, ["hac.onnx", "hac.pt2"], tmp_path / "mixed")
    _edit_manifest(folder / "hac.pt2", classes=["a", "b", "c"])
    with pytest.raises(HacError, match="different models"):
        choose_engine(folder)


def test_named_engine_that_cannot_run_the_artifact(artifacts):
    with pytest.raises(HacError, match="runs on the ort or openvino engine, not torch"):
        choose_engine(artifacts / "hac.onnx", engine="torch")


def test_openvino_runs_are_candidates_only_with_a_passed_verdict(artifacts, tmp_path):
    """OpenVINO (optional): its fp32 and bf16 runs of hac.onnx were judged at export; auto may pick them."""
    pytest.importorskip("openvino")
    from hac_runtime.engines import read_manifest

    runs = read_manifest(artifacts / "hac.onnx")["parity"]["runs"]
    assert set(runs) == {"openvino/fp32", "openvino/bf16"}
    assert runs["openvino/fp32"]["tolerance"]["name"] == "fp32"
    if "error" in runs["openvino/bf16"]:  # a CPU without BF16 (AVX2 only): refused at export, in one line
        assert runs["openvino/bf16"]["passed"] is False and "has no BF16" in runs["openvino/bf16"]["error"]
        choice = choose_engine(artifacts / "hac.onnx", seconds=0.1)
        with choice.engine:
            labels = {c.label for c in choice.candidates}
            assert "hac.onnx on openvino/cpu" in labels and "hac.onnx on openvino/cpu (bf16)" not in labels
        with pytest.raises(HacError):
            choose_engine(artifacts / "hac.onnx", precision="bf16")
        return
    assert runs["openvino/bf16"]["tolerance"]["name"] == "bf16"
    choice = choose_engine(artifacts / "hac.onnx", seconds=0.1)
    with choice.engine:
        labels = {c.label for c in choice.candidates}
        assert {"hac.onnx on ort/cpu", "hac.onnx on openvino/cpu", "hac.onnx on openvino/cpu (bf16)"} <= labels
    choice = choose_engine(artifacts / "hac.onnx", precision="bf16")
    with choice.engine as engine:
        assert engine.kind == "openvino" and engine.precision == "bf16" and engine.providers == ["openvino-cpu-bf16"]
    # a verdict that failed takes the run out, and the line says so
    folder = _copy(artifacts, ["hac.onnx"], tmp_path / "out")
    m = json.loads(manifest_path(folder / "hac.onnx").read_text())
    m["parity"]["runs"]["openvino/bf16"]["passed"] = False
    _edit_manifest(folder / "hac.onnx", parity=m["parity"])
    choice = choose_engine(folder / "hac.onnx", seconds=0.1)
    with choice.engine:
        assert "hac.onnx on openvino/cpu (bf16)" not in {c.label for c in choice.candidates}
        assert "skipped hac.onnx on openvino (bf16): failed parity at export (max_abs" in choice.describe()
