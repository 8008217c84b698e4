"""HAC export: ONNX / FP16 / INT8 / TensorRT / torch.export artifacts with parity checks, and benchmarks."""
from hac_export.api import export
from hac_export.registry import FORMATS
from hac_runtime import __version__

__all__ = ["FORMATS", "export", "__version__"]
