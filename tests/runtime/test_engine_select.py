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
    choice = choose_engine(artifacts / "hac.onnx")
    with choice.engine as engine:
        assert engine.kind == "ort" and engine.device == "cpu"
        assert choice.chosen.ms is None and len(choice.candidates) == 1
        assert choice.describe() == "hac.onnx on ort/cpu (the only engine for it here)"


def test_export_folder_keeps_the_measured_fastest(artifacts):
    choice = choose_engine(artifacts, seconds=0.2)
    with choice.engine as engine:
        assert sorted(c.artifact.name for c in choice.candidates) == ["hac.onnx", "hac.pt2"]
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
    with pytest.raises(HacError, match="no int8 exported artifact that passed"):
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
        assert [c.artifact.name for c in choice.candidates] == ["hac.onnx"]


def test_folder_of_two_different_models_is_refused(artifacts, tmp_path):
    folder = _copy(artifacts, ["hac.onnx", "hac.pt2"], tmp_path / "mixed")
    _edit_manifest(folder / "hac.pt2", classes=["a", "b", "c"])
    with pytest.raises(HacError, match="different models"):
        choose_engine(folder)


def test_named_engine_that_cannot_run_the_artifact(artifacts):
    with pytest.raises(HacError, match="runs on the ort engine, not torch"):
        choose_engine(artifacts / "hac.onnx", engine="torch")
