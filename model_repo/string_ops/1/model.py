# SPDX-License-Identifier: Apache-2.0
"""Upper-cases each BYTES element (as UTF-8 where it decodes) and reports each element's length in bytes."""

import numpy as np
import triton_python_backend_utils as pb_utils


def _upper(item: bytes) -> bytes:
    try:
        return item.decode("utf-8").upper().encode("utf-8")
    except UnicodeDecodeError:
        return item.upper()


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            flat = text.reshape(-1)
            upper = np.array([_upper(bytes(x)) for x in flat], dtype=np.object_).reshape(text.shape)
            length = np.array([len(bytes(x)) for x in flat], dtype=np.int32).reshape(text.shape)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("UPPER", upper),
                        pb_utils.Tensor("LENGTH", length),
                    ]
                )
            )
        return responses
