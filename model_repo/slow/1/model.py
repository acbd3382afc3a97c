# SPDX-License-Identifier: Apache-2.0
"""Returns INPUT0 after sleeping DELAY_MS milliseconds (default 20): fixed latency, little CPU."""

import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS")
            time.sleep((float(delay.as_numpy().reshape(-1)[0]) if delay is not None else 20.0) / 1000.0)
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data)]))
        return responses
