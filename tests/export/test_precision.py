"""Mixed FP16 and QDQ INT8 ONNX: their structure, and parity on real clips of a trained model."""
import numpy as np
import onnx
import torch

from hac_export.int8 import load_clips
from hac_export.onnx import trunk_nodes
from hac_export.parity import TOLERANCES
from hac_runtime.engines import load_engine, read_manifest
from hac_train.checkpoint import load_checkpoint

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def _inits(proto):
    return {i.name: i for i in proto.graph.initializer}


def test_fp16_trunk_half_rest_float(trained_export):
    proto = onnx.load(str(trained_export.path("onnx", "fp16")))
    inits, trunk = _inits(proto), trunk_nodes(proto)
    assert proto.graph.input[0].type.tensor_type.elem_type == FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == FLOAT
    trunk_weights = [inits[i].data_type for n in proto.graph.node if n.name in trunk for i in n.input if i in inits]
    assert trunk_weights and set(trunk_weights) == {FLOAT16}
    for node in proto.graph.node:
        if node.op_type in ("GRU", "Gemm", "MatMul") or (node.op_type == "Conv" and node.name not in trunk):
            assert node.name not in trunk
            assert {inits[i].data_type for i in node.input if i in inits} <= {FLOAT}, node.name
    casts = [n for n in proto.graph.node if n.op_type == "Cast"]
    assert {a.i for c in casts for a in c.attribute if a.name == "to"} == {FLOAT, FLOAT16}


def test_fp16_parity_on_real_clips(trained_export, trained_ckpt, calib_dir):
    m = read_manifest(trained_export.path("onnx", "fp16"))
    assert m["parity"]["tolerance"] == {"name": "fp16", **TOLERANCES["fp16"]}
    assert m["parity"]["cosine_min"] >= 0.999 and m["parity"]["passed"]
    assert "real clips" in m["parity"]["inputs"]["description"]
    model, ckpt = load_checkpoint(trained_ckpt)
    clips = load_clips(calib_dir, ckpt["preprocess"], ckpt["classes"])
    with torch.no_grad():
        ref = model(torch.from_numpy(clips.x[:8])).numpy()
    with load_engine(trained_export.path("onnx", "fp16")) as engine:
        out = engine.infer(clips.x[:8])
    cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() >= 0.999 and (ref.argmax(1) == out.argmax(1)).all()


def test_int8_qdq_structure(trained_export):
    proto = onnx.load(str(trained_export.path("onnx", "int8")))
    inits, trunk = _inits(proto), trunk_nodes(proto)
    producer = {o: n for n in proto.graph.node for o in n.output}
    quant = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert quant
    zero_points = [inits[n.input[2]] for n in quant if len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and {z.data_type for z in zero_points} == {onnx.TensorProto.UINT8}  # U8 activations
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.name in trunk]
    for conv in convs:  # every trunk conv reads a dequantised per-channel INT8 weight
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8
        assert len(onnx.numpy_helper.to_array(inits[dq.input[1]])) == inits[dq.input[0]].dims[0]  # per channel
    for node in proto.graph.node:  # attention, GRU and FC stay in float
        if node.op_type in ("GRU", "Gemm", "MatMul", "Sigmoid") or (node.op_type == "Conv" and node.name not in trunk):
            assert node.name not in trunk
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in node.input)


def test_int8_parity_and_accuracy_on_real_clips(trained_export):
    m = read_manifest(trained_export.path("onnx", "int8"))
    parity = m["parity"]
    assert parity["tolerance"] == {"name": "int8", **TOLERANCES["int8"]}
    assert parity["passed"] and parity["top1_agree"] >= 0.95 and parity["cosine_min"] >= 0.99
    assert parity["logit_err_rel"] <= 0.1
    assert parity["n"] == 24 and [b["n"] for b in parity["batches"]] == [24, 24]  # all clips at batch 1 and 8
    acc = parity["accuracy"]
    assert acc["n"] == 24 and acc["eager"] >= 0.9  # the trained model really separates the clips
    assert abs(acc["change"]) <= 0.05
    q = m["quantization"]
    assert q["format"] == "QDQ" and q["calibration"] == "minmax" and q["calibration_clips"] == 24
    assert q["activations"] == "u8 asymmetric" and q["weights"] == "s8 per-channel symmetric"
    run = parity.get("runs", {}).get("openvino/int8")
    if run is not None and run.get("passed"):  # where OpenVINO is installed and compiles on this CPU
        assert run["providers"] == ["openvino-cpu-int8"]  # what it computes in, not its f32 hint for the rest


def test_int8_s8_symmetric_form_for_tensorrt(trained_export, trained_ckpt, calib_dir, tmp_path):
    """The form built when TensorRT takes the QDQ model: INT8 activations with zero point 0 everywhere."""
    import onnxruntime as ort

    from hac_export.int8 import quantize_int8

    src = trained_export.path("onnx")
    graph = onnx.load(str(src))
    trunk = trunk_nodes(graph)
    model, ckpt = load_checkpoint(trained_ckpt)
    clips = load_clips(calib_dir, ckpt["preprocess"], ckpt["classes"])
    facts = quantize_int8(src, tmp_path / "s8.onnx", clips.x, [n.name for n in graph.graph.node if n.name not in trunk],
                          method="entropy", activations="s8")
    assert facts["activations"] == "s8 symmetric" and facts["calibration"] == "entropy"
    proto = onnx.load(str(tmp_path / "s8.onnx"))
    inits = _inits(proto)
    zps = [inits[n.input[2]] for n in proto.graph.node
           if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    assert zps and {z.data_type for z in zps} == {onnx.TensorProto.INT8}
    assert all(not onnx.numpy_helper.to_array(z).any() for z in zps)
    out = ort.InferenceSession(str(tmp_path / "s8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"clips": clips.x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(clips.x)).numpy()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.98
