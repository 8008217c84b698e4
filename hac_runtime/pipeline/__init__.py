"""The streaming pipeline (tracking, clip buffers, dynamic batching). ``Pipeline`` imports engines lazily."""


def __getattr__(name):
    if name == "Pipeline":
        from hac_runtime.pipeline.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
