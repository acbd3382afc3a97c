# SPDX-License-Identifier: Apache-2.0
"""Streams one response per input element; stops early when the client cancels."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            values = pb_utils.get_input_tensor_by_name(request, "VALUES").as_numpy().reshape(-1)
            delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS")
            delay_s = float(delay.as_numpy().reshape(-1)[0]) / 1000.0 if delay is not None else 0.0
            for index, value in enumerate(values):
                if request.is_cancelled():
                    break
                if delay_s > 0:
                    time.sleep(delay_s)
                sender.send(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("VALUE", np.array([value], dtype=np.int32)),
                            pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32)),
                        ]
                    )
                )
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
