# SPDX-License-Identifier: Apache-2.0
"""A model of a running in-process Triton: metadata, config, statistics, readiness and inference.

Example:
    >>> model = server.model("identity_fp32")                                         # doctest: +SKIP
    >>> async for response in model.async_infer({"INPUT0": np.ones(4, np.float32)}):  # doctest: +SKIP
    ...     print(response.outputs["OUTPUT0"])
    [1. 1. 1. 1.]
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from ctypes import byref, c_bool, c_uint32, c_void_p
from functools import cached_property
from typing import TYPE_CHECKING

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from . import _capi as C
from . import infer as _infer
from .types import InferenceRequest, InferenceResponse, InputValue

if TYPE_CHECKING:
    from .server import Server


class Model:
    """One model (``version`` -1: the latest) of ``server``. Cheap to create; nothing is cached but the config."""

    def __init__(self, server: Server, name: str, version: int = -1) -> None:
        self.server = server
        self.name = name
        self.version = version
        self._bname = name.encode()

    def __repr__(self) -> str:
        return f"Model({self.name!r}, version={self.version})"

    def ready(self) -> bool:
        api, value = self.server._api, c_bool()
        if self.server._handle is None:
            return False
        api.check(api.ServerModelIsReady(self.server.handle, self._bname, self.version, byref(value)))
        return value.value

    def metadata(self) -> dict:
        """KServe-style metadata: ``name``, ``versions``, ``platform``, ``inputs`` and ``outputs``."""
        return self._message(self.server._api.ServerModelMetadata)

    def config(self) -> dict:
        """The model's complete configuration (``inference.ModelConfig`` as JSON), as Triton filled it in."""
        api, msg = self.server._api, c_void_p()
        api.check(api.ServerModelConfig(self.server.handle, self._bname, self.version, 1, byref(msg)))
        return json.loads(api.message_json(msg))

    def config_protobuf(self) -> bytes:
        """The configuration as serialized ``inference.ModelConfig`` protobuf (what KServe ModelConfig returns)."""
        message = json_format.ParseDict(self.config(), model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return message.SerializeToString()

    def statistics(self) -> dict:
        """Triton's cumulative statistics for this model (counts and durations per phase)."""
        return self.server.statistics(self.name, self.version)

    @cached_property
    def decoupled(self) -> bool:
        """Whether the model may send any number of responses per request (zero or more)."""
        api, flags, voidp = self.server._api, c_uint32(), c_void_p()
        api.check(
            api.ServerModelTransactionProperties(
                self.server.handle, self._bname, self.version, byref(flags), byref(voidp)
            )
        )
        return bool(flags.value & C.TXN_DECOUPLED)

    def _message(self, fn) -> dict:
        api, msg = self.server._api, c_void_p()
        api.check(fn(self.server.handle, self._bname, self.version, byref(msg)))
        return json.loads(api.message_json(msg))

    def create_request(self, **fields) -> InferenceRequest:
        """An :class:`InferenceRequest` with the given fields, to fill in and pass to :meth:`async_infer`."""
        return InferenceRequest(**fields)

    def async_infer(
        self, inputs: InferenceRequest | Mapping[str, InputValue] | None = None, **fields
    ) -> AsyncIterator[InferenceResponse]:
        """Run inference; an async iterator of responses (one, unless the model is decoupled).

        ``inputs`` is an :class:`InferenceRequest`, or a mapping of input names to numpy arrays with the request's
        other fields (``request_id``, ``parameters``, ``output_names``, ``trace`` ...) as keywords. The iteration
        ends after the final response; for a traced request, once its ``timestamps`` are complete.
        Errors raise :class:`TritonError`; stopping early cancels the request in Triton.
        """
        if isinstance(inputs, InferenceRequest):
            request = inputs
        else:
            request = InferenceRequest(inputs=dict(inputs or {}), **fields)
        return _infer.infer(self.server, self.name, self.version, request)
