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
        self.outputs = [o["name"] for o in config["output"]]  # logits, then alpha (eq. 2) where the model has it
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        threads = os.environ.get("HAC_TRITON_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        results = self.session.run(self.outputs, {self.input: np.concatenate(arrays)})
        responses, start = [], 0
        for a in arrays:
            tensors = [pb_utils.Tensor(name, r[start:start + len(a)]) for name, r in zip(self.outputs, results)]
            start += len(a)
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
