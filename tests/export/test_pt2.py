"""torch.export artifacts load without the training code and match eager PyTorch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from hac_export.api import export
from hac_runtime.errors import HacError
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


def test_exported_program_of_batch_one(tiny_ckpt, tmp_path):
    """--batch 1:1:1 (hac-bench --batch 1): torch.export refuses a range of one value; the artifact's range
    is its manifest's, [1, 1], and a batch of 2 is refused before the program runs."""
    report = export(tiny_ckpt, formats="pt2", batch="1:1:1", out=tmp_path / "out", verbose=False)
    path = report.path("pt2")
    m = read_manifest(path)
    assert m["status"] == "passed" and m["input"]["batch"]["max"] == 1, m.get("parity")
    x = np.random.default_rng(4).standard_normal((2, 3, 3, 64, 64)).astype(np.float32)
    with load_engine(path) as engine:
        np.testing.assert_allclose(engine.infer(x[:1]), _eager(tiny_ckpt, x[:1]), atol=1e-4, rtol=1e-4)
        with pytest.raises(HacError, match="exceeds its maximum batch 1"):
            engine.infer(x)


@pytest.mark.slow
def test_aoti_package_compiles_loads_and_matches(tiny_ckpt, tmp_path):
    report = export(tiny_ckpt, formats="aoti", batch="1:2:4", out=tmp_path / "out", verbose=False)
    path = report.path("aoti")
    assert path.name == "hac.aoti.pt2"
    m = read_manifest(path)
    assert m["format"] == "aoti" and m["status"] == "passed" and m["builder"]["device"] in ("cpu", "cuda")
    assert m["builder"]["tf32"] is False  # compiled (and run) with TF32 off: FP32 is FP32
    x = np.random.default_rng(7).standard_normal((4, 3, 3, 64, 64)).astype(np.float32)
    if m["builder"]["device"] == "cpu":
        got = _load_without_training_code(path, x, tmp_path)
        assert got["providers"] == ["aoti"]
        np.testing.assert_allclose(np.array(got["logits"]), _eager(tiny_ckpt, x), atol=1e-4, rtol=1e-4)


def test_mixed_precision_model_keeps_attention_gru_fc_in_fp32(tiny_ckpt):
    """The trunk in BF16 (eq. 1's per-frame ResNet); eqs. 2-7, the GRU and the FC on FP32 maps."""
    from hac_export.pt2 import mixed_precision
    from hac_train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_ckpt)
    mixed = mixed_precision(model, "bf16")
    assert {p.dtype for p in mixed.trunk.parameters()} == {torch.bfloat16}
    rest = [p for n, p in mixed.named_parameters() if not n.startswith("trunk.")]
    assert rest and {p.dtype for p in rest} == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the original is untouched
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 3, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        ref, got = model(x), mixed(x)
    assert got.dtype == torch.float32 and not torch.equal(got, ref)
    cos = torch.nn.functional.cosine_similarity(got, ref, dim=1)
    assert cos.min() > 0.999


@pytest.mark.slow
def test_aoti_bf16_package_is_mixed_and_passes_parity(tiny_ckpt, tmp_path):
    """--format aoti --bf16: AOTInductor on this machine's device (CPU here, CUDA on a GPU box)."""
    with pytest.raises(HacError, match="--bf16 applies to aoti; --format onnx exports FP32 only"):
        export(tiny_ckpt, formats="onnx", bf16=True, out=tmp_path / "no", verbose=False)
    report = export(tiny_ckpt, formats="aoti", bf16=True, batch="1:2:4", out=tmp_path / "out", verbose=False)
    path = report.path("aoti", "bf16")
    assert path.name == "hac.bf16.aoti.pt2"
    assert [a["precision"] for a in report.artifacts if a["format"] == "aoti"] == ["bf16"]  # the reduced one only
    m = read_manifest(path)
    assert m["precision"] == "bf16" and m["status"] == "passed", m["parity"]
    assert m["builder"]["mixed"].startswith("trunk BF16;") and m["builder"]["tf32"] is False
    assert m["parity"]["cosine_min"] >= 0.999 and m["parity"]["tolerance"]["name"] == "bf16"
    x = np.random.default_rng(8).standard_normal((3, 3, 3, 64, 64)).astype(np.float32)
    with load_engine(path) as engine:
        assert engine.precision == "bf16"
        out = engine.infer(x)
    ref = _eager(tiny_ckpt, x)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert out.dtype == np.float32 and cos.min() > 0.999 and np.abs(out - ref).max() > 0  # bf16, not fp32


@pytest.mark.gpu
@pytest.mark.slow
def test_aoti_fp16_cuda_package_with_graphs(tiny_ckpt, tmp_path):
    report = export(tiny_ckpt, formats="aoti", fp16=True, batch="1:2:4", out=tmp_path / "out", verbose=False)
    path = report.path("aoti", "fp16")
    m = read_manifest(path)
    assert m["builder"]["device"] == "cuda" and m["status"] == "passed", m["parity"]
    x = np.random.default_rng(9).standard_normal((3, 3, 3, 64, 64)).astype(np.float32)
    with load_engine(path) as plain, load_engine(path, cuda_graph=True) as graphed:
        assert graphed.providers[0] == "aoti+cudagraph", graphed.providers
        np.testing.assert_allclose(graphed.infer(x), plain.infer(x), atol=1e-3)
        _, stages = graphed.infer_timed(x)
        assert stages["compute_ms"] > 0 and stages["h2d_ms"] >= 0
