"""Triton engine: batches sent to a Triton Inference Server holding a model of ``hac-export --format triton``."""
