# SPDX-License-Identifier: Apache-2.0
"""Marshalling between Python and Triton's C structures: a request built from an :class:`InferenceRequest` (inputs by
address, parameters, options) and a response read into an :class:`InferenceResponse` (outputs as numpy arrays,
parameters). No threads, no event loop: :mod:`.infer` dispatches, this module converts.

Memory: input arrays are passed to Triton by address and must live until Triton releases the request; outputs are
written by the backend into buffers from the C allocator, which responses then own as numpy arrays (no copy), except
small ones (``COPY_MAX_BYTES``), which are copied out: cheaper than owning a buffer.

Errors: a fault in the caller's request found here raises :class:`~triton_dynamo.errors.InvalidInput`, as the data
types module does for the same kind of fault; what Triton reports raises :class:`TritonError`.
"""

from __future__ import annotations

import ctypes
import math
from ctypes import byref, c_bool, c_char_p, c_double, c_int, c_int64, c_uint32, c_void_p
from typing import TYPE_CHECKING

import numpy as np

from ..dtypes import DTYPE_ENUM, ENUM_DTYPE, NUMPY_DTYPE, deserialize_bytes, serialize_bytes, triton_dtype
from ..errors import InvalidInput
from . import _capi as C
from .errors import TritonError
from .types import InferenceRequest, InferenceResponse, Tensor

if TYPE_CHECKING:
    from .server import Server

_api: C.CApi | None = None  # set by bind(): one libtritonserver per process
_shim: C.Shim | None = None
_allocator = c_void_p()
_UINT8 = np.dtype(np.uint8)


def bind(api: C.CApi, shim: C.Shim, allocator: c_void_p) -> None:
    """The library, C callbacks and response allocator that requests are built with and responses read from."""
    global _api, _shim, _allocator
    _api, _shim, _allocator = api, shim, allocator


class OutputBuffer:
    """Owns one output buffer from the C allocator; numpy arrays made from it keep it alive (array interface)."""

    __slots__ = ("__array_interface__", "header")

    def __init__(self, header: int, address: int, size: int) -> None:
        self.header = header
        self.__array_interface__ = {"data": (address, False), "shape": (size,), "typestr": "|u1", "version": 3}

    def __del__(self) -> None:
        if _shim is not None:
            _shim.buffer_free(self.header)


def set_parameter(request: int, key: bytes, value) -> None:
    if isinstance(value, bool):
        err = _api.InferenceRequestSetBoolParameter(request, key, value)
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:  # ctypes would silently wrap it around
            raise InvalidInput(f"request parameter {key.decode()!r} = {value} does not fit in a 64-bit signed integer")
        err = _api.InferenceRequestSetIntParameter(request, key, value)
    elif isinstance(value, float):
        err = _api.InferenceRequestSetDoubleParameter(request, key, value)
    elif isinstance(value, str):
        err = _api.InferenceRequestSetStringParameter(request, key, value.encode())
    else:
        raise InvalidInput(
            f"request parameter {key.decode()!r} has unsupported type {type(value).__name__}; "
            "use str, int, float or bool"
        )
    _api.check(err)


def input_buffer(name: str, value) -> tuple[str, tuple, np.ndarray]:
    """(Triton type, shape, contiguous bytes) of one input value."""
    if isinstance(value, Tensor):
        buffer = np.frombuffer(value.data, dtype=_UINT8) if memoryview(value.data).nbytes else np.empty(0, _UINT8)
        return value.data_type, tuple(value.shape), buffer
    if isinstance(value, np.ndarray):
        data_type = triton_dtype(value.dtype)
        if data_type == "BYTES":
            return data_type, value.shape, np.frombuffer(serialize_bytes(value), dtype=_UINT8)
        return data_type, value.shape, value if value.flags.c_contiguous else np.ascontiguousarray(value)
    raise InvalidInput(f"input {name!r} must be a numpy array or a Tensor, not {type(value).__name__}")


def new_request(
    server: Server,
    model_name: str,
    model_version: int,
    req: InferenceRequest,
    call_ptr: int,
    keep: list,
    table: ctypes.Array,
) -> int:
    """Triton's request for ``req``, with the binding's callbacks for the call state ``call_ptr``; the input arrays
    go to ``keep``, which must live until Triton releases the request."""
    inputs = req.inputs
    if len(inputs) > len(table):
        table = (C.Input * len(inputs))()
    for entry, (name, value) in zip(table, inputs.items(), strict=False):
        data_type, shape, buffer = input_buffer(name, value)
        keep.append(buffer)
        entry.name = name.encode()
        entry.base = _address(buffer)
        entry.byte_size = buffer.nbytes
        entry.datatype = DTYPE_ENUM[data_type]
        entry.dim_count = len(shape)
        if len(shape) <= C.INLINE_DIMS:
            entry.dims[: len(shape)] = shape
            entry.shape = None
        else:
            dims = (c_int64 * len(shape))(*shape)
            keep.append(dims)
            entry.shape = ctypes.addressof(dims)
    names = req.output_names
    outputs = (c_char_p * len(names))(*(name.encode() for name in names)) if names else None
    request = c_void_p()
    _api.check(
        _shim.request_new(
            server.handle,
            model_name.encode(),
            model_version,
            req.request_id.encode() if req.request_id else None,
            table,
            len(inputs),
            outputs,
            len(names),
            _allocator,
            call_ptr,
            byref(request),
        )
    )
    try:
        set_options(request, req)
    except BaseException:
        _api.InferenceRequestDelete(request)
        raise
    return request.value


def set_options(request: c_void_p, req: InferenceRequest) -> None:
    """What few requests have: sequence fields, priority, timeout and parameters."""
    if req.correlation_id is not None:
        if isinstance(req.correlation_id, str):
            _api.check(_api.InferenceRequestSetCorrelationIdString(request, req.correlation_id.encode()))
        else:
            _api.check(_api.InferenceRequestSetCorrelationId(request, req.correlation_id))
    if req.flags:
        _api.check(_api.InferenceRequestSetFlags(request, req.flags))
    if req.priority:
        _api.check(_api.InferenceRequestSetPriorityUInt64(request, req.priority))
    if req.timeout_us:
        _api.check(_api.InferenceRequestSetTimeoutMicroseconds(request, req.timeout_us))
    for key, value in req.parameters.items():
        set_parameter(request, key.encode(), value)


_OUTPUT_DTYPE = np.dtype(C.Output)  # the ctypes declaration's layout, which the shim's is checked against
# TRITONSERVER_DataType value -> (Triton name, numpy dtype)
_DTYPE_BY_ENUM = {enum: (name, NUMPY_DTYPE[name]) for enum, name in ENUM_DTYPE.items()}


class Scratch:
    """Where responses are read into: made once per event loop rather than per response."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.head = C.ResponseHead()
        self.outputs = (C.Output * capacity)()
        self.rows = np.frombuffer(self.outputs, dtype=_OUTPUT_DTYPE)


_address = C.address
# ctypes.memmove lets go of the GIL, and getting it back from Dynamo's threads under load costs far more than the
# copy: libc's memmove through a handle whose calls keep the GIL.
_memmove = ctypes.PyDLL(None).memmove
_memmove.argtypes = (c_void_p, c_void_p, ctypes.c_size_t)
_memmove.restype = c_void_p
# Outputs up to this size are copied into a numpy array, their buffer left to the response's release: cheaper than
# an array that owns the buffer (docs/measurements.md, "small outputs copied"), and a memcpy of this size costs well
# under that.
COPY_MAX_BYTES = 16384


def unreadable(model: str, exc: BaseException) -> TritonError:
    return TritonError(
        f"model {model!r} sent a response that cannot be read: {type(exc).__name__}: {exc}", code=TritonError.INTERNAL
    )


def read_response(response: int, final: bool, scratch: Scratch, model: str, request_id: str) -> InferenceResponse:
    """The response's outputs and parameters; its model name and id are the request's (Triton copies them)."""
    head = scratch.head
    _api.check(_shim.read_response(response, head, scratch.outputs, scratch.capacity))
    if head.error:
        # Ours to delete: TRITONSERVER_InferenceResponseError makes a new error at each call (r24.10 tritonserver.cc,
        # whatever tritonserver.h says); kept, it leaked about 245 bytes per error response (measured with mallinfo2).
        raise _api.error(head.error)
    if head.output_count > scratch.capacity:  # rare: read again into room enough for all
        scratch = Scratch(head.output_count)
        _api.check(_shim.read_response(response, scratch.head, scratch.outputs, scratch.capacity))
    outputs: dict[str, np.ndarray] = {}
    for name, shape_p, base, header, size, datatype, ndim, dims in scratch.rows[: head.output_count].tolist():
        shape = tuple(dims[:ndim].tolist()) if ndim <= C.INLINE_DIMS else tuple(ctypes.cast(shape_p, _I64P)[:ndim])
        if header and size <= COPY_MAX_BYTES:
            raw = np.empty(size, _UINT8)
            _memmove(_address(raw), base, size)
            _shim.buffer_untake(header)  # freed when the response is deleted, right after this read
        elif header:  # from our allocator: the array owns the buffer from now on
            raw = np.asarray(OutputBuffer(header, base, size))
        elif size:  # memory Triton owns: copy it before the response goes
            raw = np.frombuffer(ctypes.string_at(base, size), _UINT8)
        else:
            raw = np.empty(0, _UINT8)
        type_name, dtype = _DTYPE_BY_ENUM[datatype]
        if type_name == "BYTES":
            array = deserialize_bytes(raw, math.prod(shape)).reshape(shape)  # Python ints: no int64 wrap
        else:
            array = raw.view(dtype).reshape(shape)
        outputs[ctypes.string_at(name).decode()] = array
    return InferenceResponse(
        model=model,
        model_version=head.version,
        request_id=request_id,
        outputs=outputs,
        parameters=read_parameters(response) if head.parameter_count else {},
        final=final,
    )


_I64P = ctypes.POINTER(c_int64)


def read_parameters(response: int) -> dict:
    count = c_uint32()
    _api.check(_api.InferenceResponseParameterCount(response, byref(count)))
    result = {}
    name, kind, value = c_char_p(), c_int(), c_void_p()
    for index in range(count.value):
        _api.check(_api.InferenceResponseParameter(response, index, byref(name), byref(kind), byref(value)))
        if kind.value == C.PARAMETER_STRING:
            parsed = ctypes.cast(value, c_char_p).value.decode()
        elif kind.value == C.PARAMETER_INT:
            parsed = ctypes.cast(value, ctypes.POINTER(c_int64))[0]
        elif kind.value == C.PARAMETER_BOOL:
            parsed = ctypes.cast(value, ctypes.POINTER(c_bool))[0]
        elif kind.value == C.PARAMETER_DOUBLE:
            parsed = ctypes.cast(value, ctypes.POINTER(c_double))[0]
        else:
            parsed = None
        result[name.value.decode()] = parsed
    return result
