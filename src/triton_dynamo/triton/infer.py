# SPDX-License-Identifier: Apache-2.0
"""Asynchronous inference over the C API: building a request, Triton's callbacks, and an async iterator of responses.

Threads: Triton calls back on its own threads into the binding's C callbacks (``_shim.c``), which never touch
Python: they queue an event on the channel of the caller's event loop and write to its eventfd, or, for the
request's and trace's releases before the final response, only set a bit that the loop reads with that response.
The loop drains the channel and does all the Python work (reading a response, deleting a request) on its own
thread, so cancellation and deletion cannot race and Triton's threads never wait for the GIL. Building and sending
a request is one call into the shim each.

Building a request and reading a response (the conversions, and who owns which memory) are in :mod:`.marshal`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from ctypes import byref, c_uint64, c_void_p
from typing import TYPE_CHECKING

import numpy as np

from . import _capi as C
from . import marshal
from .errors import TritonError
from .types import TRACE_ACTIVITY_FIELDS, InferenceRequest, InferenceResponse, TraceTimestamps

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger(__name__)

_api: C.CApi | None = None  # set by install(): one libtritonserver per process
_shim: C.Shim | None = None
_allocator = c_void_p()
_calls: dict[int, _Call] = {}
_channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Channel] = weakref.WeakKeyDictionary()
_last: tuple = (None, None)  # the most recent (loop, channel): nearly always the one asked for
_keys = itertools.count(1)
_UINT8 = np.dtype(np.uint8)
_DRAIN_BATCH = 256
_EVENT_DTYPE = np.dtype(C.Event)  # the ctypes declaration's layout, which the shim's is checked against
_TIMESTAMP_FIELDS = [TRACE_ACTIVITY_FIELDS[i] for i in range(C.TRACE_ACTIVITIES)]
_TimestampArray = c_uint64 * C.TRACE_ACTIVITIES


def install(api: C.CApi) -> None:
    """Make ``api`` the library requests go to; load the C callbacks and create the process's response allocator."""
    global _api, _shim
    if _api is not None:
        return
    shim = C.Shim(api)
    api.check(api.ResponseAllocatorNew(byref(_allocator), shim.alloc, shim.release, shim.start))
    _api, _shim = api, shim
    marshal.bind(api, shim, _allocator)


def pending_count() -> int:
    """Requests handed to Triton that have not completed yet (not every callback seen)."""
    return len(_calls)


class _Channel:
    """The C event queue of one event loop, drained on that loop when its eventfd is readable."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ptr = _shim.channel_new()
        if not self.ptr:
            raise TritonError("cannot create an event channel (out of memory or file descriptors)")
        self.fd = _shim.channel_fd(self.ptr)
        self.events = (C.Event * _DRAIN_BATCH)()
        self.view = np.frombuffer(self.events, dtype=_EVENT_DTYPE)
        self.scratch = marshal.Scratch()
        self.inputs = (C.Input * 8)()  # filled for each request built on this loop
        loop.add_reader(self.fd, self.drain)

    @staticmethod
    def of(loop: asyncio.AbstractEventLoop) -> _Channel:
        global _last
        if _last[0] is loop:
            return _last[1]
        channel = _channels.get(loop)
        if channel is None:
            channel = _channels[loop] = _Channel(loop)
        _last = (loop, channel)
        return channel

    def drain(self) -> None:
        _shim.channel_reset(self.ptr)
        while True:
            count = _shim.channel_drain(self.ptr, self.events, _DRAIN_BATCH)
            for handle, ptr, kind, flags in self.view[:count].tolist():
                call = _calls.get(handle)
                if call is None:  # a trace Triton released for a request it refused: nothing left to do
                    logger.debug("event %d for a request no longer tracked (%d)", kind, handle)
                    if kind == C.EVENT_RESPONSE and ptr:
                        _api.InferenceResponseDelete(ptr)
                    continue
                try:
                    if kind == C.EVENT_RESPONSE:
                        call.on_response(ptr, flags)
                    elif kind == C.EVENT_REQUEST_RELEASE:
                        call.on_request_release()
                    else:
                        call.on_trace_release()
                except Exception as exc:
                    # One event's fault fails its own request; the rest of the batch, and every later event of
                    # this loop (drain() has reset the eventfd), must still be handled.
                    logger.exception("event %d of request %r failed", kind, call.request_id)
                    call.fail(exc)
            if count < _DRAIN_BATCH:
                return


class _Call:
    """The state of one request from ``ServerInferAsync`` until Triton has reported everything about it."""

    __slots__ = (
        "abandoned",
        "channel",
        "cptr",
        "final",
        "handle",
        "inputs",
        "items",
        "model",
        "on_release",
        "on_trace",
        "released",
        "request",
        "request_id",
        "timestamps",
        "trace_done",
        "waiter",
    )

    def __init__(
        self,
        channel: _Channel,
        model: str,
        req: InferenceRequest,
    ) -> None:
        self.handle = next(_keys)
        self.channel = channel
        self.cptr = _shim.call_new(channel.ptr, self.handle)
        if not self.cptr:
            raise TritonError("out of memory for a request's callback state")
        self.model = model
        self.request_id = req.request_id
        self.request = None
        self.inputs: list | None = []  # the input buffers, until Triton releases the request
        self.items: deque = deque()
        self.waiter: asyncio.Future | None = None
        self.final = False
        self.released = False
        self.abandoned = False
        self.trace_done = not req.trace
        self.timestamps = TraceTimestamps() if req.trace else None
        self.on_trace = req.on_trace
        self.on_release = req.on_release

    @property
    def answered(self) -> bool:
        """Every response is in (and the trace, unless a callback takes it): the caller's iteration can end."""
        return self.final and (self.trace_done or self.on_trace is not None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish_if_done(self) -> None:
        # Triton may release the request before or after its last response: forget it only once both happened.
        if self.final and self.released and self.trace_done:
            _calls.pop(self.handle, None)
            _shim.call_free(self.cptr)
            self.cptr = None

    def on_response(self, response: int, flags: int) -> None:
        final = bool(flags & C.RESPONSE_COMPLETE_FINAL)
        if response:
            try:
                if not self.abandoned:
                    self.items.append(
                        marshal.read_response(response, final, self.channel.scratch, self.model, self.request_id)
                    )
            except TritonError as exc:
                self.items.append(exc)
            except Exception as exc:  # a malformed response (BYTES or byte size not fitting its shape): this one fails
                self.items.append(marshal.unreadable(self.model, exc))
            finally:
                _api.InferenceResponseDelete(response)
        if final and not self.final:
            self.final = True
            # From here on a release queues an event; those before it are handled now, with no event.
            state = _shim.call_wait(self.cptr)
            if state & C.REQUEST_RELEASED:
                self._release_request()
            if state & C.TRACE_RELEASED and not self.trace_done:
                self._read_trace()
        self._wake()
        self._finish_if_done()

    def fail(self, exc: BaseException) -> None:
        """Handling an event of this request failed: it ends with that error (Triton's other events still come)."""
        self.items.append(marshal.unreadable(self.model, exc))
        self._wake()

    def on_request_release(self) -> None:
        self._release_request()
        self._wake()
        self._finish_if_done()

    def _release_request(self) -> None:
        self.released = True
        _api.InferenceRequestDelete(self.request)
        self.inputs = None
        self.released_now()
        # A trace Triton released inside that delete, on this thread, comes with no event (see the shim).
        if not self.trace_done and _shim.call_state(self.cptr) & C.TRACE_RELEASED:
            self._read_trace()

    def released_now(self) -> None:
        """Tell the caller (``InferenceRequest.on_release``), once."""
        on_release, self.on_release = self.on_release, None
        if on_release is not None:
            try:
                on_release()
            except Exception:
                logger.exception("on_release of request %r failed", self.request_id)

    def on_trace_release(self) -> None:
        if not self.trace_done:
            self._read_trace()
        self._wake()
        self._finish_if_done()

    def _read_trace(self) -> None:
        # Into the instance dict directly, cheaper than setattr on every traced request (docs/measurements.md).
        fields = vars(self.timestamps)
        values = _TimestampArray.from_address(_shim.call_timestamps(self.cptr))[:]
        for field, value in zip(_TIMESTAMP_FIELDS, values, strict=True):
            if value:  # zero: Triton did not report the activity
                fields[field] = value
        self.trace_done = True
        if self.on_trace is not None:
            try:
                self.on_trace(self.timestamps)
            except Exception:
                logger.exception("trace callback failed")

    def cancel(self) -> None:
        """Ask Triton to stop work on the request; runs on the loop thread, where the request is deleted, so the
        request still exists unless its release was already handled."""
        self.abandoned = True
        self.items.clear()
        if not self.released:
            err = _api.InferenceRequestCancel(self.request)
            if err:
                logger.debug("cancelling request: %s", _api.error(err))


# --- the async iterator ---------------------------------------------------------------------------------------------


async def infer(
    server: Server, model_name: str, model_version: int, req: InferenceRequest
) -> AsyncIterator[InferenceResponse]:
    """Send ``req`` and yield its responses; ends after the final one (and, for a traced request without an
    ``on_trace`` callback, once Triton has released the trace, so ``req.timestamps`` is complete). Input arrays
    stay referenced until Triton releases the request, which may be a little later: do not change them in place.

    Raises :class:`TritonError` for a request Triton refuses or a response that carries an error. Leaving the
    iteration early, or cancelling the task that runs it, cancels the request in Triton.
    """
    loop = asyncio.get_running_loop()
    try:
        channel = _Channel.of(loop)
        call = _Call(channel, model_name, req)
    except BaseException:
        if req.on_release is not None:
            req.on_release()
        raise
    try:
        call.request = marshal.new_request(
            server, model_name, model_version, req, call.cptr, call.inputs, channel.inputs
        )
    except BaseException:
        _shim.call_free(call.cptr)
        call.released_now()
        raise
    _calls[call.handle] = call
    trace_level = C.TRACE_LEVEL_TIMESTAMPS if req.trace else 0
    try:
        _api.check(_shim.request_send(server.handle, call.request, call.cptr, trace_level))
    except BaseException:
        # Triton did not take the request: it stays ours, and no response or release callback will come.
        _calls.pop(call.handle, None)
        _api.InferenceRequestDelete(call.request)
        _shim.call_free(call.cptr)
        call.released_now()
        if call.on_trace is not None:
            # No trace event will come for it either: what was traced (nothing, for a request never queued) now, so
            # that the caller's record of the request completes.
            call.on_trace(call.timestamps)
        raise
    req.timestamps = call.timestamps  # filled in when Triton releases the trace
    try:
        while True:
            while call.items:
                item = call.items.popleft()
                if isinstance(item, TritonError):
                    raise item
                yield item
            if call.answered:
                return
            call.waiter = loop.create_future()
            try:
                await call.waiter
            finally:
                call.waiter = None
    finally:
        if not call.answered:
            call.cancel()
