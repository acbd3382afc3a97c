# SPDX-License-Identifier: Apache-2.0
"""ctypes declarations for Triton's stable C API (``tritonserver.h``, API version 1.x).

This is the only module that knows the C signatures. Everything above it works with :class:`CApi`, whose attributes
are the C functions with their argument and result types set, plus :meth:`CApi.check`, which turns a returned
``TRITONSERVER_Error*`` into a :class:`~triton_dynamo.triton.errors.TritonError` and frees it; and with
:class:`Shim`, the binding's own C callbacks (``_shim.c``), which Triton calls on its threads without Python.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_bool, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint, c_uint32, c_uint64, c_void_p
from pathlib import Path

from .errors import TritonError

# The oldest API with every call used here: 1.30, where TRITONSERVER_ServerSetExitTimeout first appears (r24.04;
# the next newest are InferenceTraceSetContext, 1.29, and ModelLoadRetryCount, 1.28). Read from tritonserver.h on
# each release branch of triton-inference-server/core. The wheel's and the image's Triton 2.51 (r24.10) speak 1.34.
REQUIRED_API_MAJOR = 1
REQUIRED_API_MINOR = 30
REQUIRED_RELEASE = "Triton r24.04, 2.45, or later"

# Enums from tritonserver.h that code above this module needs by name.
MODEL_CONTROL_NONE, MODEL_CONTROL_POLL, MODEL_CONTROL_EXPLICIT = 0, 1, 2
PARAMETER_STRING, PARAMETER_INT, PARAMETER_BOOL, PARAMETER_DOUBLE, PARAMETER_BYTES = 0, 1, 2, 3, 4
METRIC_PROMETHEUS = 0
TRACE_LEVEL_TIMESTAMPS = 0x4
REQUEST_RELEASE_ALL = 1
RESPONSE_COMPLETE_FINAL = 1
INDEX_FLAG_READY = 1
TXN_DECOUPLED = 2
LOG_FORMAT_DEFAULT, LOG_FORMAT_ISO8601 = 0, 1

err_p = c_void_p  # TRITONSERVER_Error*, kept opaque so that a NULL (success) arrives as None

_P = c_void_p
_PP = POINTER(c_void_p)
_STR_OUT = POINTER(c_char_p)

# name: argument types; every one of these returns TRITONSERVER_Error*.
_ERROR_RETURNING: dict[str, tuple] = {
    "ApiVersion": (POINTER(c_uint32), POINTER(c_uint32)),
    "ErrorDelete": (_P,),
    "MessageDelete": (_P,),
    "MessageSerializeToJson": (_P, _PP, POINTER(c_size_t)),
    "MetricsDelete": (_P,),
    "MetricsFormatted": (_P, c_int, _PP, POINTER(c_size_t)),
    "ResponseAllocatorNew": (_PP, _P, _P, _P),
    "ResponseAllocatorDelete": (_P,),
    "ServerOptionsNew": (_PP,),
    "ServerOptionsDelete": (_P,),
    "ServerOptionsSetServerId": (_P, c_char_p),
    "ServerOptionsSetModelRepositoryPath": (_P, c_char_p),
    "ServerOptionsSetModelControlMode": (_P, c_int),
    "ServerOptionsSetStartupModel": (_P, c_char_p),
    "ServerOptionsSetStrictModelConfig": (_P, c_bool),
    "ServerOptionsSetStrictReadiness": (_P, c_bool),
    "ServerOptionsSetExitTimeout": (_P, c_uint),
    "ServerOptionsSetExitOnError": (_P, c_bool),
    "ServerOptionsSetLogFile": (_P, c_char_p),
    "ServerOptionsSetLogInfo": (_P, c_bool),
    "ServerOptionsSetLogWarn": (_P, c_bool),
    "ServerOptionsSetLogError": (_P, c_bool),
    "ServerOptionsSetLogFormat": (_P, c_int),
    "ServerOptionsSetLogVerbose": (_P, c_int),
    "ServerOptionsSetMetrics": (_P, c_bool),
    "ServerOptionsSetGpuMetrics": (_P, c_bool),
    "ServerOptionsSetCpuMetrics": (_P, c_bool),
    "ServerOptionsSetMetricsInterval": (_P, c_uint64),
    "ServerOptionsSetMetricsConfig": (_P, c_char_p, c_char_p, c_char_p),
    "ServerOptionsSetBackendDirectory": (_P, c_char_p),
    "ServerOptionsSetRepoAgentDirectory": (_P, c_char_p),
    "ServerOptionsSetBackendConfig": (_P, c_char_p, c_char_p, c_char_p),
    "ServerOptionsSetPinnedMemoryPoolByteSize": (_P, c_uint64),
    "ServerOptionsSetCudaMemoryPoolByteSize": (_P, c_int, c_uint64),
    "ServerOptionsSetMinSupportedComputeCapability": (_P, c_double),
    "ServerOptionsSetModelLoadThreadCount": (_P, c_uint),
    "ServerOptionsSetModelLoadRetryCount": (_P, c_uint),
    "ServerNew": (_PP, _P),
    "ServerDelete": (_P,),
    "ServerStop": (_P,),
    "ServerSetExitTimeout": (_P, c_uint),
    "ServerIsLive": (_P, POINTER(c_bool)),
    "ServerIsReady": (_P, POINTER(c_bool)),
    "ServerModelIsReady": (_P, c_char_p, c_int64, POINTER(c_bool)),
    "ServerModelTransactionProperties": (_P, c_char_p, c_int64, POINTER(c_uint32), _PP),
    "ServerMetadata": (_P, _PP),
    "ServerModelMetadata": (_P, c_char_p, c_int64, _PP),
    "ServerModelStatistics": (_P, c_char_p, c_int64, _PP),
    "ServerModelConfig": (_P, c_char_p, c_int64, c_uint32, _PP),
    "ServerModelIndex": (_P, c_uint32, _PP),
    "ServerLoadModel": (_P, c_char_p),
    "ServerLoadModelWithParameters": (_P, c_char_p, _PP, c_uint64),
    "ServerUnloadModel": (_P, c_char_p),
    "ServerUnloadModelAndDependents": (_P, c_char_p),
    "ServerMetrics": (_P, _PP),
    "InferenceRequestDelete": (_P,),
    "InferenceRequestSetFlags": (_P, c_uint32),
    "InferenceRequestSetCorrelationId": (_P, c_uint64),
    "InferenceRequestSetCorrelationIdString": (_P, c_char_p),
    "InferenceRequestSetPriorityUInt64": (_P, c_uint64),
    "InferenceRequestSetTimeoutMicroseconds": (_P, c_uint64),
    "InferenceRequestSetStringParameter": (_P, c_char_p, c_char_p),
    "InferenceRequestSetIntParameter": (_P, c_char_p, c_int64),
    "InferenceRequestSetBoolParameter": (_P, c_char_p, c_bool),
    "InferenceRequestSetDoubleParameter": (_P, c_char_p, c_double),
    "InferenceRequestCancel": (_P,),
    "InferenceResponseDelete": (_P,),
    "InferenceResponseError": (_P,),  # returns a new error, the caller's to delete (r24.10)
    "InferenceResponseModel": (_P, _STR_OUT, POINTER(c_int64)),
    "InferenceResponseId": (_P, _STR_OUT),
    "InferenceResponseParameterCount": (_P, POINTER(c_uint32)),
    "InferenceResponseParameter": (_P, c_uint32, _STR_OUT, POINTER(c_int), _PP),
    "InferenceResponseOutputCount": (_P, POINTER(c_uint32)),
    "InferenceResponseOutput": (
        _P,
        c_uint32,
        _STR_OUT,
        POINTER(c_int),
        POINTER(POINTER(c_int64)),
        POINTER(c_uint64),
        _PP,
        POINTER(c_size_t),
        POINTER(c_int),
        POINTER(c_int64),
        _PP,
    ),
    "InferenceTraceId": (_P, POINTER(c_uint64)),
}

# name: (result type, argument types) for the few calls that do not return an error.
_OTHER: dict[str, tuple] = {
    "ErrorNew": (c_void_p, (c_int, c_char_p)),
    "ErrorCode": (c_int, (_P,)),
    "ErrorCodeString": (c_char_p, (_P,)),
    "ErrorMessage": (c_char_p, (_P,)),
    "ParameterNew": (c_void_p, (c_char_p, c_int, c_void_p)),
    "ParameterBytesNew": (c_void_p, (c_char_p, c_void_p, c_uint64)),
    "ParameterDelete": (None, (_P,)),
}


# Calls on the request path that return at once and never wait for Python: they keep the GIL. Releasing it around
# each of them handed the GIL to Dynamo's runtime threads and back about ten times per request; under load in a
# worker that cost more CPU than the calls themselves. (Triton's threads never take the GIL: _shim.c holds its
# callbacks.) Everything else, which may block (start, stop, load, unload), releases it.
_KEEP_GIL_PREFIXES = (
    "Error",
    "InferenceRequest",
    "InferenceResponse",
    "InferenceTrace",
    "ServerModelIsReady",
    "ServerIsLive",
    "ServerIsReady",
)


def keeps_gil(name: str) -> bool:
    return name.startswith(_KEEP_GIL_PREFIXES)


class CApi:
    """The C functions of one loaded ``libtritonserver``, by their name without the ``TRITONSERVER_`` prefix."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        # The same library through a handle whose calls keep the GIL (dlopen returns the loaded one).
        self.lib_gil = ctypes.PyDLL(lib._name, mode=ctypes.RTLD_GLOBAL)
        # The version first, alone: an older Triton lacks some of the functions below, and a clear refusal beats
        # the AttributeError that binding a missing one would raise.
        self.api_version = self._api_version()
        if self.api_version[0] != REQUIRED_API_MAJOR or self.api_version[1] < REQUIRED_API_MINOR:
            raise TritonError(
                f"libtritonserver ({lib._name}) speaks C API {self.api_version[0]}.{self.api_version[1]}; this "
                f"binding needs {REQUIRED_API_MAJOR}.{REQUIRED_API_MINOR} or a later 1.x ({REQUIRED_RELEASE})",
                code=TritonError.UNSUPPORTED,
            )
        for name, argtypes in _ERROR_RETURNING.items():
            fn = self._function(self.lib_gil if keeps_gil(name) else lib, name)
            fn.restype = err_p
            fn.argtypes = argtypes
            setattr(self, name, fn)
        for name, (restype, argtypes) in _OTHER.items():
            fn = self._function(self.lib_gil, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def _api_version(self) -> tuple[int, int]:
        fn = self._function(self.lib_gil, "ApiVersion")
        fn.restype = err_p
        fn.argtypes = _ERROR_RETURNING["ApiVersion"]
        major, minor = ctypes.c_uint32(), ctypes.c_uint32()
        err = fn(ctypes.byref(major), ctypes.byref(minor))
        if err:
            raise TritonError("TRITONSERVER_ApiVersion failed", code=TritonError.INTERNAL)
        return major.value, minor.value

    def _function(self, lib: ctypes.CDLL, name: str):
        try:
            return getattr(lib, "TRITONSERVER_" + name)
        except AttributeError:
            raise TritonError(
                f"libtritonserver ({self.lib._name}) has no TRITONSERVER_{name}: this binding needs C API "
                f"{REQUIRED_API_MAJOR}.{REQUIRED_API_MINOR} or a later 1.x ({REQUIRED_RELEASE})",
                code=TritonError.UNSUPPORTED,
            ) from None

    def error(self, err: int, *, delete: bool = True) -> TritonError:
        """Turn a non-NULL ``TRITONSERVER_Error*`` into a :class:`TritonError`, freeing it unless told not to."""
        code = self.ErrorCode(err)
        message = (self.ErrorMessage(err) or b"").decode("utf-8", "replace")
        if delete:
            self.ErrorDelete(err)
        return TritonError(message, code=code)

    def check(self, err: int | None) -> None:
        """Raise the error a C call returned, if it returned one."""
        if err:
            raise self.error(err)

    def message_json(self, message: int) -> bytes:
        """The JSON text of a ``TRITONSERVER_Message``, which is then deleted."""
        base, size = c_void_p(), c_size_t()
        try:
            self.check(self.MessageSerializeToJson(message, ctypes.byref(base), ctypes.byref(size)))
            return ctypes.string_at(base, size.value)
        finally:
            self.MessageDelete(message)


class Event(ctypes.Structure):
    """``td_event`` of ``_shim.c``: one thing Triton reported for a request."""

    _fields_ = [("handle", c_uint64), ("ptr", c_void_p), ("kind", c_uint32), ("flags", c_uint32)]


class ResponseHead(ctypes.Structure):
    """``td_response_head`` of ``_shim.c``."""

    _fields_ = [
        ("error", c_void_p),
        ("version", c_int64),
        ("output_count", c_uint32),
        ("parameter_count", c_uint32),
    ]


INLINE_DIMS = 8


class Output(ctypes.Structure):
    """``td_output`` of ``_shim.c``: one output of a response."""

    _fields_ = [
        ("name", c_void_p),
        ("shape", c_void_p),
        ("base", c_void_p),
        ("header", c_void_p),
        ("byte_size", c_uint64),
        ("datatype", c_int64),
        ("dim_count", c_uint64),
        ("dims", c_int64 * INLINE_DIMS),
    ]


class Input(ctypes.Structure):
    """``td_input`` of ``_shim.c``: one input of a request to build."""

    _fields_ = [
        ("name", c_char_p),
        ("base", c_void_p),
        ("byte_size", c_uint64),
        ("datatype", c_int64),
        ("dim_count", c_uint64),
        ("shape", c_void_p),  # NULL: the shape is in dims
        ("dims", c_int64 * INLINE_DIMS),
    ]


EVENT_RESPONSE, EVENT_REQUEST_RELEASE, EVENT_TRACE_RELEASE = 1, 2, 3
REQUEST_RELEASED, TRACE_RELEASED = 1, 2  # td_call state bits
TRACE_ACTIVITIES = 7

_SHIM_FUNCTIONS: dict[str, tuple] = {
    "td_init": (c_int, ()),
    "td_read_response": (c_void_p, (_P, POINTER(ResponseHead), POINTER(Output), c_uint32)),
    "td_channel_new": (c_void_p, ()),
    "td_channel_fd": (c_int, (_P,)),
    "td_channel_free": (None, (_P,)),
    "td_channel_reset": (None, (_P,)),
    "td_channel_drain": (c_size_t, (_P, POINTER(Event), c_size_t)),
    "td_call_new": (c_void_p, (_P, c_uint64)),
    "td_call_timestamps": (c_void_p, (_P,)),
    "td_call_free": (None, (_P,)),
    "td_call_state": (c_int, (_P,)),
    "td_call_wait": (c_int, (_P,)),
    "td_request_new": (
        c_void_p,
        (_P, c_char_p, c_int64, c_char_p, POINTER(Input), c_uint32, POINTER(c_char_p), c_uint32, _P, _P, _PP),
    ),
    "td_request_send": (c_void_p, (_P, _P, _P, c_int)),
    "td_buffer_untake": (None, (_P,)),
    "td_buffer_free": (None, (_P,)),
}
_SHIM_CALLBACKS = (
    "td_on_response",
    "td_on_request_release",
    "td_on_trace_activity",
    "td_on_trace_release",
    "td_alloc",
    "td_release",
    "td_start",
)


def shim_path() -> Path:
    """The compiled shim, which the package build puts beside ``_shim.c`` (hatch_build.py). Missing, it is an
    installation fault, named as one: nothing is compiled at run time."""
    from . import _build_shim

    path = _build_shim.SOURCE.with_name(_build_shim.LIBRARY_NAME)
    if not path.exists():
        raise TritonError(
            f"the binding's C callbacks ({path}) are missing: the package was installed without its build step. "
            "Reinstall it so that it is built with a C compiler (`uv sync --reinstall-package triton-dynamo`, or "
            "`pip install --force-reinstall triton-dynamo`)",
            code=TritonError.UNAVAILABLE,
        )
    return path


# Each ctypes declaration and the shim's table of the same struct's C layout (td_layout_* in _shim.c).
_LAYOUTS = {
    Event: "td_layout_event",
    ResponseHead: "td_layout_response_head",
    Output: "td_layout_output",
    Input: "td_layout_input",
}


def check_layouts(lib: ctypes.CDLL) -> None:
    """Refuse a shim whose structs are not laid out as this module declares them (size, then every field's
    offset): reading them anyway would misread every response."""
    for struct, symbol in _LAYOUTS.items():
        names = [name for name, *_ in struct._fields_]
        theirs = list((c_uint64 * (len(names) + 1)).in_dll(lib, symbol))
        ours = [ctypes.sizeof(struct), *(getattr(struct, name).offset for name in names)]
        if theirs != ours:
            raise TritonError(
                f"{symbol.removeprefix('td_layout_')}: the shim lays it out as {theirs}, the binding as {ours} (size, "
                "then each field's offset): rebuild the package",
                code=TritonError.INTERNAL,
            )


def address(array) -> int:
    """Where a contiguous numpy array's data starts (``array.ctypes.data`` costs six times more: it builds an
    object)."""
    try:
        return _addressof(_c_char_from_buffer(array))
    except (TypeError, ValueError):  # read-only or empty
        return array.ctypes.data


_addressof = ctypes.addressof
_c_char_from_buffer = ctypes.c_char.from_buffer


class Shim:
    """The binding's C callbacks, loaded from the package (built at install), their structs checked."""

    def __init__(self, api: CApi) -> None:
        path = shim_path()
        lib = ctypes.PyDLL(str(path))  # every call here is short and never waits: keep the GIL (see keeps_gil)
        check_layouts(lib)
        for name, (restype, argtypes) in _SHIM_FUNCTIONS.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[3:], fn)
        # Addresses of the callbacks, to hand to Triton.
        for name in _SHIM_CALLBACKS:
            setattr(self, name[3:], ctypes.cast(getattr(lib, name), c_void_p).value)
        if self.init() != 0:
            raise TritonError(f"{path.name} did not find Triton's functions in the process", code=TritonError.INTERNAL)
        self.lib = lib
