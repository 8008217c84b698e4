"""Mixed-precision FP16 ONNX: the ResNet trunk in FP16; attention, GRU, FC and the model's I/O in FP32.

This is the form TensorRT 11 needs (a strongly typed network takes its
precisions from the ONNX; the builder has no FP16 flag any more), and ONNX
Runtime's CPU provider runs it too (it computes FP16 nodes it has no kernel for
in FP32 between inserted casts, keeping the FP16 rounding of every tensor), so
the parity check runs anywhere.

The pass: trunk nodes (found by the exporter's module scopes, ``onnx.trunk_nodes``)
get FP16 initializers; a ``Cast`` to FP16 goes in front of every FP32 value that
enters the trunk and a ``Cast`` to FP32 after every trunk value that leaves it.
The attention (eq. 2–6) sums and divides sigmoid weights and the GRU carries a
state across frames: both stay in FP32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hac_export.onnx import trunk_nodes
from hac_runtime.errors import HacFailure


def _elem_types(graph) -> dict[str, int]:
    types = {}
    for value in (*graph.input, *graph.output, *graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    return types


def convert_mixed_fp16(src, dst) -> dict:
    """Write the mixed-precision model of ``src`` (FP32 ONNX) to ``dst``; return what was converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(src)))
    graph = proto.graph
    half = trunk_nodes(proto)
    types = _elem_types(graph)
    FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16

    nodes = []  # detached copies: edited here, then replace the graph's node list
    for node in graph.node:
        nodes.append(onnx.NodeProto())
        nodes[-1].CopyFrom(node)
    producer = {out: node for node in nodes for out in node.output}
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    inits = {i.name: i for i in graph.initializer}

    def is_half(node) -> bool:
        return node.name in half

    # FP16 initializers: convert in place when only the trunk uses them, else add an FP16 copy.
    converted_inits, renamed_inits = 0, {}
    for name, init in list(inits.items()):
        if init.data_type != FLOAT:
            continue
        users = consumers.get(name, [])
        if not users or not any(is_half(n) for n in users):
            continue
        arr = numpy_helper.to_array(init).astype(np.float16)
        if all(is_half(n) for n in users):
            init.CopyFrom(numpy_helper.from_array(arr, name))
        else:
            copy = numpy_helper.from_array(arr, f"{name}__fp16")
            graph.initializer.append(copy)
            renamed_inits[name] = copy.name
        converted_inits += 1

    new_nodes, casts_in = [], {}
    casts = 0
    for node in nodes:
        if not is_half(node):
            new_nodes.append(node)
            continue
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
        for i, name in enumerate(node.input):
            if not name or types.get(name) != FLOAT:
                continue
            if name in inits:
                if name in renamed_inits:
                    node.input[i] = renamed_inits[name]
                continue
            src_node = producer.get(name)
            if src_node is not None and is_half(src_node):
                continue  # already FP16
            if name not in casts_in:  # an FP32 value entering the trunk
                casts_in[name] = f"{name}__to_fp16"
                new_nodes.append(helper.make_node("Cast", [name], [casts_in[name]], to=FLOAT16,
                                                  name=f"{name}__cast_fp16"))
                casts += 1
            node.input[i] = casts_in[name]
        new_nodes.append(node)
        for j, name in enumerate(node.output):
            if types.get(name) != FLOAT:
                continue
            leaves = name in graph_outputs or any(not is_half(c) for c in consumers.get(name, []))
            if not leaves:
                continue
            inner = f"{name}__fp16"  # the trunk keeps the FP16 value; FP32 users read the Cast's output
            node.output[j] = inner
            for c in consumers.get(name, []):
                if is_half(c):
                    for m, cname in enumerate(c.input):
                        if cname == name:
                            c.input[m] = inner
            new_nodes.append(helper.make_node("Cast", [inner], [name], to=FLOAT, name=f"{name}__cast_fp32"))
            casts += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    # FP32 value_info recorded for values now in FP16 would contradict the graph: infer it afresh.
    del graph.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.save_model(proto, str(dst))
    if not casts:
        raise HacFailure(f"{Path(dst).name}: FP16 conversion inserted no casts; the trunk boundary was not found")
    return {"fp16_nodes": len(half), "fp16_initializers": converted_inits, "casts": casts,
            "fp32_blocks": ["self_attention", "spatial_attention", "gru", "fc", "io"]}
