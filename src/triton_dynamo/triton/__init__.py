# SPDX-License-Identifier: Apache-2.0
"""In-process Triton Inference Server through Triton's stable C API.

The public surface: :class:`Server` with its :class:`Options`, :class:`Model`, the request and response types,
:class:`TritonError`, and the dtype helpers. Nothing outside this package touches ctypes.

Beside NVIDIA's in-process ``tritonserver`` package (the Triton container's): ``Server.model``, ``Server.models``
(``exclude_not_ready``), ``Server.load``, ``Server.metadata`` and ``unload_dependents`` mean what they mean there.
It differs in: ``Server.unload`` waits until the model is gone (``wait_until_unloaded=True``; there False);
``Server.load`` takes ``config`` and ``files`` rather than a parameters mapping; ``Server.model_index`` (Triton's
repository index as it is) is ours alone; the model control mode is the
``Options.model_control_mode`` string (``"none"``, ``"poll"``, ``"explicit"``), not an enum.

Example:
    >>> import numpy as np
    >>> from triton_dynamo.triton import Server
    >>> with Server(model_repository="model_repo") as server:                      # doctest: +SKIP
    ...     async for r in server.model("identity_fp32").async_infer({"INPUT0": np.ones(3, np.float32)}):
    ...         print(r.outputs["OUTPUT0"])
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# Imported on first use, so that importing one light module of the package (its errors, its request and response
# types) does not load ctypes, the shim and Triton's model-config protobufs.
_WHERE = {
    "TRITON_DTYPES": "..dtypes",
    "deserialize_bytes": "..dtypes",
    "numpy_dtype": "..dtypes",
    "serialize_bytes": "..dtypes",
    "triton_dtype": "..dtypes",
    "TritonError": ".errors",
    "TritonInstall": ".locate",
    "find_installation": ".locate",
    "Model": ".model",
    "Options": ".server",
    "Server": ".server",
    "InferenceRequest": ".types",
    "InferenceResponse": ".types",
    "Tensor": ".types",
    "TraceTimestamps": ".types",
}

if TYPE_CHECKING:
    from ..dtypes import TRITON_DTYPES, deserialize_bytes, numpy_dtype, serialize_bytes, triton_dtype
    from .errors import TritonError
    from .locate import TritonInstall, find_installation
    from .model import Model
    from .server import Options, Server
    from .types import InferenceRequest, InferenceResponse, Tensor, TraceTimestamps

__getattr__ = lazy_attributes(__name__, _WHERE)


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
