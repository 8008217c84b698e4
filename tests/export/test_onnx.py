"""FP32 ONNX: the structural invariants, metadata, manifest, and ONNX Runtime equal to eager PyTorch."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hac_runtime.engines import load_engine, read_manifest
from hac_runtime.engines.base import sha256_of
from hac_train.checkpoint import file_sha256, load_checkpoint
from conftest import CLASSES

CONTRACT_KEYS = {"format", "precision", "classes", "preprocess", "input", "output", "source_sha256",
                 "toolkit_version", "builder", "parity"}
PARITY_KEYS = {"max_abs", "max_rel", "logit_err_rel", "cosine_min", "top1_agree", "top1_agree_tie_aware",
               "top1_ties", "alpha_max_abs", "n", "passed", "tolerance", "batches", "inputs"}


def test_onnx_invariants(untrained_export):
    path = untrained_export.path("onnx")
    onnx.checker.check_model(str(path))
    proto = onnx.load(str(path))
    assert len(proto.graph.initializer) > 0 and not any(  # one self-contained file
        i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)
    (inp,), (out, alpha) = proto.graph.input, proto.graph.output
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")  # symbolic batch
    assert [d.dim_value for d in dims[1:]] == [3, 3, 64, 64]  # k and image size fixed from the checkpoint
    assert out.name == "logits" and out.type.tensor_type.shape.dim[0].dim_param
    # the second output: α of eq. 2, one weight per frame (issue 16)
    assert alpha.name == "alpha" and alpha.type.tensor_type.shape.dim[0].dim_param
    assert [d.dim_value for d in alpha.type.tensor_type.shape.dim[1:]] == [3]
    assert read_manifest(path)["attention"] == {"name": "alpha", "shape": ["batch", 3], "dtype": "float32"}
    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert len(grus) == 1
    assert {a.name: a.i for a in grus[0].attribute}["linear_before_reset"] == 1


def test_metadata_in_model_matches_manifest(untrained_export, tiny_ckpt):
    path = untrained_export.path("onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    manifest = read_manifest(path)
    assert json.loads(meta["classes"]) == manifest["classes"] == CLASSES
    assert json.loads(meta["preprocess"]) == manifest["preprocess"]
    assert meta["source_sha256"] == manifest["source_sha256"] == file_sha256(tiny_ckpt)
    assert meta["precision"] == "fp32"


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_ort_equals_eager(untrained_export, tiny_ckpt, batch):
    model, _ = load_checkpoint(tiny_ckpt)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with load_engine(untrained_export.path("onnx")) as engine:
        out = engine.infer(x)
    assert out.shape == (batch, 3)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    assert (out.argmax(1) == ref.argmax(1)).all()


def test_manifests_and_parity_file(untrained_export, tiny_ckpt):
    names = {a["name"] for a in untrained_export.artifacts}
    assert names == {"hac.onnx", "hac.fp16.onnx", "hac.pt2"}
    doc = json.loads(untrained_export.parity_file.read_text())
    assert set(doc["artifacts"]) == names and doc["source_sha256"] == file_sha256(tiny_ckpt)
    for a in untrained_export.artifacts:
        m = read_manifest(a["path"])
        assert CONTRACT_KEYS <= set(m)
        assert m["status"] == "passed" and m["parity"]["passed"]
        assert m["artifact"]["sha256"] == sha256_of(a["path"]) and m["artifact"]["file"] == a["name"]
        assert m["input"] == {"name": "clips", "shape": ["batch", 3, 3, 64, 64], "dtype": "float32",
                              "batch": m["input"]["batch"]}
        assert m["output"]["name"] == "logits" and m["output"]["shape"] == ["batch", 3]
        assert PARITY_KEYS <= set(m["parity"]) and [b["batch"] for b in m["parity"]["batches"]] == [1, 8]
        assert m["parity"] == {k: v for k, v in doc["artifacts"][a["name"]].items() if k in m["parity"]}
    fp32 = read_manifest(untrained_export.path("onnx"))
    assert fp32["builder"]["opset"] == 20 and fp32["builder"]["gru_nodes"] == 1
    assert fp32["parity"]["tolerance"] == {"name": "fp32", "atol": 1e-4, "rtol": 1e-4, "cosine_min": 0.99999,
                                           "top1_agree_min": 1.0, "top1_tie_rel": 1e-4,
                                           "alpha_atol": 1e-4}
    assert fp32["parity"]["max_abs"] < 1e-4 and fp32["parity"]["top1_agree"] == 1.0
    assert fp32["parity"]["alpha_max_abs"] < 1e-5  # eq. 2's α from the artifact is eager's
    # judged on hac-synth clips (no --calib), every clip at batch 1 and at batch 8, never on noise
    inputs = fp32["parity"]["inputs"]
    assert "hac-synth clips" in inputs["description"] and len(inputs["clips"]) == 16
    assert [b["n"] for b in fp32["parity"]["batches"]] == [16, 16] and fp32["parity"]["n"] == 16


def test_no_partial_files_left(untrained_export):
    left = [p.name for p in untrained_export.out.iterdir() if p.name.startswith(".")]
    assert left == []


def test_every_onnx_engine_returns_alpha_as_eager_computes_it(untrained_export, tiny_ckpt):
    """Eq. 2 per frame, from the artifact: ORT (and OpenVINO where installed) give eager PyTorch's α."""
    import importlib.util

    model, _ = load_checkpoint(tiny_ckpt)
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        logits, attention = model(x, return_attention=True)
    engines = ["ort"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for name in engines:
        with load_engine(untrained_export.path("onnx"), name, "cpu") as engine:
            out, alpha = engine.infer_all(x.numpy())
            assert np.allclose(out, logits.numpy(), atol=1e-4) and np.array_equal(engine.infer(x.numpy()), out)
            assert alpha.shape == (2, 3) and np.allclose(alpha, attention["self"].numpy(), atol=1e-5), name
            assert ((alpha > 0) & (alpha < 1)).all()


def test_logits_and_alpha_keep_their_shapes_when_k_differs_from_the_classes(tmp_path):
    """k = 4 frames, 2 classes: the two outputs cannot be told apart by shape in the other fixtures (3 and 3)."""
    from hac_export.onnx import export_onnx, verify_onnx
    from hac_train.model import HACConfig, HACNet

    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=2, k=4)).eval()
    export_onnx(model, tmp_path / "k4.onnx", 4, 64)
    verify_onnx(tmp_path / "k4.onnx", expect_gru=True, outputs=["logits", "alpha"])
    sess = ort.InferenceSession(str(tmp_path / "k4.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "alpha"]
    x = torch.randn(3, 4, 3, 64, 64)
    logits, alpha = sess.run(None, {"clips": x.numpy()})
    with torch.no_grad():
        ref, attention = model(x, return_attention=True)
    assert logits.shape == (3, 2) and alpha.shape == (3, 4)
    assert np.allclose(logits, ref.numpy(), atol=1e-4) and np.allclose(alpha, attention["self"].numpy(), atol=1e-5)
