# SPDX-License-Identifier: Apache-2.0
"""A deep chain of matrix products with fixed, seeded weights: compute-bound, so that a GPU is the bottleneck.

Triton places the instance (config.pbtxt: KIND_AUTO): a GPU instance computes with torch on its GPU, a CPU instance
with numpy. Both compute the float32 function written out in config.pbtxt, so outputs can be checked with numpy on
any machine (scripts/gpu-check.sh and tests/gpu do).
"""

import json
import math

import numpy as np
import triton_python_backend_utils as pb_utils


def parameters(model_config: dict) -> dict:
    """SEED, HIDDEN, DEPTH (ints) and OUTPUT_MEMORY from the config's ``parameters``, and FEATURES from X's dims."""
    values = {key: entry["string_value"] for key, entry in model_config.get("parameters", {}).items()}
    (features,) = model_config["input"][0]["dims"]
    return {
        "SEED": int(values["SEED"]),
        "HIDDEN": int(values["HIDDEN"]),
        "DEPTH": int(values["DEPTH"]),
        "OUTPUT_MEMORY": values.get("OUTPUT_MEMORY", "gpu"),
        "FEATURES": int(features),
    }


def weights(seed: int, features: int, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W_in, W_hidden, W_out as config.pbtxt defines them: drawn in that order, scaled by 1/sqrt(fan-in)."""
    rng = np.random.default_rng(seed)
    drawn = []
    for shape in ((features, hidden), (hidden, hidden), (hidden, features)):
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(1.0 / math.sqrt(shape[0]))  # in place: stays float32 under any numpy's casting rules
        drawn.append(w)
    return tuple(drawn)


def forward_numpy(x: np.ndarray, w_in: np.ndarray, w_hidden: np.ndarray, w_out: np.ndarray, depth: int) -> np.ndarray:
    h = np.tanh(x @ w_in)
    for _ in range(depth):
        h = np.tanh(h @ w_hidden)
    return (h @ w_out).astype(np.float32, copy=False)


class TritonPythonModel:
    def initialize(self, args):
        self.logger = pb_utils.Logger
        config = json.loads(args["model_config"])
        self.params = parameters(config)
        self.weights = weights(self.params["SEED"], self.params["FEATURES"], self.params["HIDDEN"])
        self.torch = None
        self.device = "cpu (numpy)"
        kind = args.get("model_instance_kind", "CPU")
        if kind == "GPU":
            self._start_torch(int(args.get("model_instance_device_id", 0)))
        self.logger.log_info(
            f"gpu_matmul instance {args['model_instance_name']} ({kind}): computing on {self.device}, "
            f"HIDDEN={self.params['HIDDEN']} DEPTH={self.params['DEPTH']}"
        )

    def _start_torch(self, device_id: int) -> None:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is None or not torch.cuda.is_available():
            self.logger.log_warn(
                "gpu_matmul: Triton placed this instance on a GPU, but torch with CUDA is not importable here; "
                "computing with numpy on the CPU"
            )
            return
        # Full float32 products (no TF32), so that the GPU's answers match numpy's within float32 rounding.
        torch.backends.cuda.matmul.allow_tf32 = False
        self.torch = torch
        self.cuda = torch.device(f"cuda:{device_id}")
        # DLPack rather than torch's numpy bridge: no dependence on which numpy torch was built against.
        self.gpu_weights = [torch.from_dlpack(w).to(self.cuda) for w in self.weights]
        self.device = f"{self.cuda} ({torch.cuda.get_device_name(self.cuda)}, torch {torch.__version__})"

    def execute(self, requests):
        # np.concatenate also copies a single request's read-only input into a writable array, which DLPack needs.
        inputs = [pb_utils.get_input_tensor_by_name(r, "X").as_numpy() for r in requests]
        x = np.concatenate(inputs).astype(np.float32, copy=False)
        if self.torch is None:
            y = forward_numpy(x, *self.weights, self.params["DEPTH"])
            outputs = [pb_utils.Tensor("Y", part) for part in self._split(y, inputs)]
        else:
            outputs = self._execute_torch(x, inputs)
        return [pb_utils.InferenceResponse(output_tensors=[tensor]) for tensor in outputs]

    def _execute_torch(self, x, inputs):
        torch = self.torch
        w_in, w_hidden, w_out = self.gpu_weights
        with torch.inference_mode():
            h = torch.tanh(torch.from_dlpack(x).to(self.cuda) @ w_in)
            for _ in range(self.params["DEPTH"]):
                h = torch.tanh(h @ w_hidden)
            y = (h @ w_out).contiguous()
        if self.params["OUTPUT_MEMORY"] == "gpu":
            # Triton copies these into the response's buffers; wait for the products first, since Triton's copy
            # does not order itself after torch's stream.
            torch.cuda.current_stream(self.cuda).synchronize()
            return [pb_utils.Tensor.from_dlpack("Y", part.contiguous()) for part in self._split(y, inputs)]
        host = np.from_dlpack(y.cpu())
        return [pb_utils.Tensor("Y", np.ascontiguousarray(part)) for part in self._split(host, inputs)]

    @staticmethod
    def _split(y, inputs):
        start = 0
        for x in inputs:
            yield y[start : start + len(x)]
            start += len(x)
