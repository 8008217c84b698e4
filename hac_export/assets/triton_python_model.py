"""Triton Python backend model written by ``hac-export --format triton --triton-backend python``.

Runs ``model.onnx`` (beside this file) with ONNX Runtime on the CPU. Dynamic batching hands
``execute`` several requests at once: they run as one batch and each gets its own rows back.
Needs ``onnxruntime`` and ``numpy`` in the server's Python. Not imported by HAC itself.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        threads = os.environ.get("HAC_TRITON_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        logits = self.session.run([self.output], {self.input: np.concatenate(arrays)})[0]
        responses, start = [], 0
        for a in arrays:
            rows = logits[start:start + len(a)]
            start += len(a)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, rows)]))
        return responses
