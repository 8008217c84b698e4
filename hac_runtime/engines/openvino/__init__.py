"""OpenVINO engine (CPU): runs the exported ONNX files in FP32, BF16 (by precision hint) and INT8 (QDQ)."""
