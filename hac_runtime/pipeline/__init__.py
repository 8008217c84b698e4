"""The streaming pipeline (tracking, clip buffers, dynamic batching). ``Pipeline`` imports engines lazily."""


from hac_runtime.pipeline.config import DEFAULTS, PipelineConfig

__all__ = ["DEFAULTS", "Pipeline", "PipelineConfig"]


def __getattr__(name):
    if name == "Pipeline":
        from hac_runtime.pipeline.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
