"""torch.export artifacts load without the training code and match eager PyTorch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from hac_export.api import export
from hac_runtime.engines import load_engine, read_manifest
from hac_train.checkpoint import load_checkpoint

# Load an artifact with hac_train made unimportable, and print its logits.
NO_TRAIN = """
import sys, json, numpy as np
sys.modules['hac_train'] = None
from hac_runtime.engines import load_engine
x = np.load(sys.argv[2])
with load_engine(sys.argv[1]) as engine:
    print(json.dumps({'logits': engine.infer(x).tolist(), 'providers': engine.providers}))
"""


def _eager(ckpt, x):
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _load_without_training_code(path, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", NO_TRAIN, str(path), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_exported_program_loads_without_training_code(untrained_export, tiny_ckpt, tmp_path):
    path = untrained_export.path("pt2")
    assert path.name == "hac.pt2"
    x = np.random.default_rng(5).standard_normal((3, 3, 3, 64, 64)).astype(np.float32)
    got = _load_without_training_code(path, x, tmp_path)
    assert got["providers"] == ["torch.export"]
    np.testing.assert_allclose(np.array(got["logits"]), _eager(tiny_ckpt, x), atol=1e-4, rtol=1e-4)


def test_exported_program_batch_range(untrained_export, tiny_ckpt):
    with load_engine(untrained_export.path("pt2")) as engine:
        assert engine.max_batch == 8 and read_manifest(engine.artifact)["input"]["batch"]["max"] == 8
        for b in (1, 8):
            x = np.random.default_rng(b).standard_normal((b, 3, 3, 64, 64)).astype(np.float32)
            np.testing.assert_allclose(engine.infer(x), _eager(tiny_ckpt, x), atol=1e-4, rtol=1e-4)
        out = engine.infer(torch.zeros(2, 3, 3, 64, 64))  # torch in → torch out
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


@pytest.mark.slow
def test_aoti_package_compiles_loads_and_matches(tiny_ckpt, tmp_path):
    report = export(tiny_ckpt, formats="aoti", batch="1:2:4", out=tmp_path / "out", verbose=False)
    path = report.path("aoti")
    assert path.name == "hac.aoti.pt2"
    m = read_manifest(path)
    assert m["format"] == "aoti" and m["status"] == "passed" and m["builder"]["device"] in ("cpu", "cuda")
    x = np.random.default_rng(7).standard_normal((4, 3, 3, 64, 64)).astype(np.float32)
    if m["builder"]["device"] == "cpu":
        got = _load_without_training_code(path, x, tmp_path)
        assert got["providers"] == ["aoti"]
        np.testing.assert_allclose(np.array(got["logits"]), _eager(tiny_ckpt, x), atol=1e-4, rtol=1e-4)
