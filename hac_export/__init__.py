"""HAC export: ONNX / FP16 / INT8 / TensorRT / torch.export artifacts with parity checks, and benchmarks."""
from hac_runtime import __version__

__all__ = ["__version__"]
