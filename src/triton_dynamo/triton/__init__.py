# SPDX-License-Identifier: Apache-2.0
"""In-process Triton Inference Server through Triton's stable C API.

The public surface: :class:`Server` with its :class:`Options`, :class:`Model`, the request and response types,
:class:`TritonError`, and the dtype helpers. Names follow NVIDIA's in-process ``tritonserver`` package where that
costs nothing, so code written for it reads the same. Nothing outside this package touches ctypes.

Example:
    >>> import numpy as np
    >>> from triton_dynamo.triton import Server
    >>> with Server(model_repository="model_repo") as server:                      # doctest: +SKIP
    ...     async for r in server.model("identity_fp32").async_infer({"INPUT0": np.ones(3, np.float32)}):
    ...         print(r.outputs["OUTPUT0"])
"""

from .dtypes import TRITON_DTYPES, deserialize_bytes, numpy_dtype, serialize_bytes, triton_dtype
from .errors import TritonError
from .locate import TritonInstall, find_installation
from .model import Model
from .server import Options, Server
from .types import InferenceRequest, InferenceResponse, Tensor, TraceTimestamps

__all__ = [
    "TRITON_DTYPES",
    "InferenceRequest",
    "InferenceResponse",
    "Model",
    "Options",
    "Server",
    "Tensor",
    "TraceTimestamps",
    "TritonError",
    "TritonInstall",
    "deserialize_bytes",
    "find_installation",
    "numpy_dtype",
    "serialize_bytes",
    "triton_dtype",
]
