# SPDX-License-Identifier: Apache-2.0
"""A deterministic multilayer perceptron: the same weights on every machine (seeded), so outputs can be checked.

Every request of a batch goes through one matrix product per layer, which is what makes batching pay.
"""

import itertools

import numpy as np
import triton_python_backend_utils as pb_utils

SEED = 20261124
SIZES = (64, 512, 512, 10)


def weights():
    """The layers' (weight, bias) pairs; also imported by tests and the load generator to check answers."""
    rng = np.random.default_rng(SEED)
    return [
        (rng.standard_normal((n_in, n_out)).astype(np.float32) / np.sqrt(n_in), np.zeros(n_out, np.float32))
        for n_in, n_out in itertools.pairwise(SIZES)
    ]


def forward(layers, x):
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class TritonPythonModel:
    def initialize(self, args):
        self.layers = weights()

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, "FEATURES").as_numpy() for r in requests]
        sizes = [x.shape[0] for x in inputs]
        probabilities = forward(self.layers, np.concatenate(inputs).astype(np.float32))
        classes = probabilities.argmax(axis=1).astype(np.int64).reshape(-1, 1)
        responses, start = [], 0
        for size in sizes:
            end = start + size
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("PROBABILITIES", probabilities[start:end]),
                        pb_utils.Tensor("CLASS", classes[start:end]),
                    ]
                )
            )
            start = end
        return responses
