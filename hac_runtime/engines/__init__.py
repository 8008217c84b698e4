"""Inference engines behind one small interface (Polygraphy-like: one folder per backend, a loader and a runner).

``load_engine(artifact)`` opens any artifact written by ``hac-export`` — ONNX
(ONNX Runtime), TensorRT engine, torch.export / AOTInductor package — after
checking it against its manifest. Importing this package imports no backend.
"""
from hac_runtime.engines.base import ENGINES, Engine, check_manifest, load_engine, manifest_path, read_manifest

__all__ = ["ENGINES", "Engine", "check_manifest", "load_engine", "manifest_path", "read_manifest"]
