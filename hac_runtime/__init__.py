"""HAC runtime: faces, clip sampling, engines and the streaming pipeline.

Importing this package is cheap: OpenCV, dlib, ONNX Runtime, TensorRT and torch
are imported lazily by the modules that need them. It never imports hac_train.
"""
from hac_runtime.errors import HacError, HacException, HacFailure

__version__ = "0.1.0"

__all__ = ["HacError", "HacException", "HacFailure", "__version__"]
