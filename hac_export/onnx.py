"""FP32 ONNX export (dynamo exporter) and the checks every ONNX artifact must pass.

One self-contained file (``external_data=False``), opset 20, input ``clips``
``(batch, k, 3, S, S)`` with a symbolic batch — k and S fixed by the
checkpoint — and outputs ``logits (batch, classes)`` and, for a model with self-attention,
``alpha (batch, k)`` (eq. 2; ``hac_export.outputs``). After export:
``onnx.checker`` passes, the batch dimension is symbolic, and every GRU node
has ``linear_before_reset=1`` (PyTorch's GRU applies the reset gate after the
hidden matmul; ONNX's default 0 would compute another network).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

from hac_runtime.errors import HacFailure, one_line

OPSET = 20
INPUT_NAME = "clips"
OUTPUT_NAME = "logits"  # then "alpha" where the model has self-attention (hac_export.outputs)
SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # per-node module path written by the dynamo exporter
TRUNK_SCOPE = "trunk"  # HACNet.trunk: the per-frame ResNet (paper §3, Fig. 1)


@contextlib.contextmanager
def quiet():
    """Silence exporters' deprecation warnings, log chatter and progress prints; errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model, path, k: int, image_size: int) -> dict:
    """Export ``model`` (eval, CPU) to ``path``; return builder facts. Batch dim symbolic via torch.export.Dim."""
    import onnx
    import torch

    from hac_export.outputs import exportable, output_names

    example = torch.randn(2, k, 3, image_size, image_size)  # batch >= 2, or the exporter specialises it to 1
    batch = torch.export.Dim("batch", min=1)
    try:
        with quiet(), torch.no_grad():
            program = torch.onnx.export(exportable(model), (example,), None, dynamo=True, external_data=False,
                                        input_names=[INPUT_NAME], output_names=output_names(model),
                                        dynamic_shapes=({0: batch},), opset_version=OPSET, optimize=True)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; report one line
        first = one_line(e)[:200]
        raise HacFailure(f"ONNX export failed: {type(e).__name__}: {first}") from e
    proto = program.model_proto
    onnx.save_model(proto, str(path))
    return {"exporter": "torch.onnx (dynamo)", "opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__}


def node_scopes(node) -> list[str]:
    """The module path the dynamo exporter recorded for ``node`` (e.g. ``['', 'trunk', 'trunk.4', …]``)."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                return list(ast.literal_eval(prop.value))
            except (ValueError, SyntaxError):
                return []
    return []


def trunk_nodes(proto) -> set[str]:
    """Names of the nodes that implement the per-frame ResNet trunk; attention, GRU and FC are the rest."""
    names = {n.name for n in proto.graph.node if TRUNK_SCOPE in node_scopes(n)}
    if not names or not any(n.op_type == "Conv" for n in proto.graph.node if n.name in names):
        raise HacFailure("ONNX graph carries no trunk scope metadata (was it exported by hac-export?)")
    return names


def verify_onnx(path, expect_gru: bool, outputs: list[str] | None = None) -> dict:
    """Assert the ONNX invariants; return facts about the graph. A violation is a HacFailure (exit 1).
    ``outputs``: the output names expected, in order (default: logits only)."""
    import onnx

    path = Path(path)
    outputs = outputs or [OUTPUT_NAME]
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as e:
        raise HacFailure(f"{path.name}: onnx.checker failed: {(str(e).splitlines() or [''])[0][:200]}") from None
    proto = onnx.load(str(path), load_external_data=False)
    graph = proto.graph
    if len(graph.input) != 1 or graph.input[0].name != INPUT_NAME or [o.name for o in graph.output] != outputs:
        raise HacFailure(f"{path.name}: expected one input {INPUT_NAME!r} and the outputs {outputs}, got "
                         f"{[o.name for o in graph.output]}")
    for value in (graph.input[0], *graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_value") or not dim.dim_param:
            raise HacFailure(f"{path.name}: batch dimension of {value.name!r} is fixed ({dim.dim_value}), not symbolic")
    grus = [n for n in graph.node if n.op_type == "GRU"]
    for node in grus:
        lbr = next((a.i for a in node.attribute if a.name == "linear_before_reset"), 0)
        if lbr != 1:
            raise HacFailure(f"{path.name}: GRU node {node.name!r} has linear_before_reset={lbr}; PyTorch's GRU needs 1 "
                             "(upgrade onnxscript to >= 0.7.1)")
    if expect_gru and not grus:
        raise HacFailure(f"{path.name}: the model has a GRU but the graph has no GRU node")
    return {"nodes": len(graph.node), "gru_nodes": len(grus), "opset": next(
        (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)}


def set_metadata(path, manifest: dict) -> None:
    """Write the manifest's description into the model's ``metadata_props`` (values are JSON strings)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    keys = ("format", "precision", "classes", "preprocess", "model", "input", "output", "attention",
            "source_sha256", "toolkit_version")
    onnx.helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v)
                                        for k, v in manifest.items() if k in keys})
    proto.producer_name = "hac-export"
    proto.doc_string = f"HAC (Hybrid Attention Cascade) {manifest['precision']} model; see metadata_props"
    onnx.save_model(proto, str(path))
