# SPDX-License-Identifier: Apache-2.0
"""Triton's own log lines, routed into Python logging.

Triton 2.51's C API has no log callback, but it can write its log to a file. We give it a named pipe, drain that
pipe on a thread of the shim (no Python, so Triton never waits for the GIL), and on a daemon thread turn each line
into a record of the logger ``triton_dynamo.triton.tritonserver``, keeping Triton's level (I, W, E, V as INFO,
WARNING, ERROR, DEBUG) and its source file and line. Triton's logger is one per process, so the pipe and its reader
are too.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from ctypes import byref, c_void_p
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import _capi as C
from .errors import TritonError
from .locate import has_nvidia_gpu

logger = logging.getLogger(__name__)

# Triton's text waiting for Python, at most; more is dropped (and reported) rather than let Triton wait.
LOG_BUFFER_BYTES = 64 << 20
_CHUNK_BYTES = 1 << 16
triton_logger = logging.getLogger(__name__.rsplit(".", 1)[0] + ".tritonserver")

# I1124 17:24:55.459293 2685 grpc_server.cc:2558] "Started GRPCInferenceService at 0.0.0.0:18001"
# 2024-11-24T17:24:55Z I 2685 grpc_server.cc:2558] "..." (log_format ISO8601, which LogSettings can switch to)
_LINE = re.compile(r"^(?:([IWEV])\d{4} [\d:.]+|\d{4}-\d\d-\d\dT[\d:.]+Z ([IWEV])) +\d+ ([^\s:\]]+):(\d+)\] ?(.*)$")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "V": logging.DEBUG}
# What Triton says at start on a machine without a GPU, every time, and what it means nothing there.
_NO_GPU_NOISE = (
    "CudaDriverHelper has not been initialized",
    "Unable to allocate pinned system memory",
    "DCGM unable to start",
    "CUDA memory pools could not be created",
)


def parse_line(line: str, previous_level: int = logging.INFO) -> tuple[int, str, int, str]:
    """(level, source file, source line, message) of one Triton log line.

    A line that does not start like a Triton record (the rows of Triton's model tables) continues the previous one
    and keeps its level.

    Example:
        >>> parse_line('W1124 17:24:55.459293 2685 server.cc:12] "model x failed"')
        (30, 'server.cc', 12, 'model x failed')
        >>> parse_line('2024-11-24T17:24:55Z E 2685 server.cc:9] "boom"')
        (40, 'server.cc', 9, 'boom')
    """
    match = _LINE.match(line)
    if match is None:
        return previous_level, "tritonserver", 0, line
    level_default, level_iso, filename, lineno, message = match.groups()
    level = level_default or level_iso
    if len(message) >= 2 and message[0] == message[-1] == '"':
        # Triton writes each message as a JSON string (quotes, backslashes and newlines escaped).
        with contextlib.suppress(ValueError):
            message = json.loads(message)
    return _LEVELS[level], filename, int(lineno), message


class _LogPump:
    """The process's one pipe from Triton's logger into :data:`triton_logger`.

    The pipe is drained by a C thread of the shim (``td_log_start``), never by Python: a Python reader needs the GIL
    between two reads, and a thread holding the GIL while Triton logs (under its logger's lock) into a full pipe hung
    the process for good. This thread takes the text from the shim's buffer, waiting without the GIL.
    """

    def __init__(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="triton-dynamo-log-"))
        self.path = folder / "tritonserver.log"
        os.mkfifo(self.path, 0o600)
        # Read and write: never blocks on open, and never sees end-of-file while Triton reopens the pipe.
        self._fd = os.open(self.path, os.O_RDWR)
        shim = ctypes.CDLL(str(C.shim_path()))  # CDLL: td_log_take blocks with the GIL released
        shim.td_log_start.restype = ctypes.c_void_p
        shim.td_log_start.argtypes = (ctypes.c_int, ctypes.c_size_t)
        self._take = shim.td_log_take
        self._take.restype = ctypes.c_size_t
        self._take.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64))
        self._log = shim.td_log_start(self._fd, LOG_BUFFER_BYTES)
        if not self._log:
            raise TritonError("cannot start the thread that reads Triton's log", code=TritonError.INTERNAL)
        self._thread = threading.Thread(target=self._run, name="triton-log", daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[str]:
        """Triton's log text as it comes; a drop is reported where it happened."""
        buffer, dropped = ctypes.create_string_buffer(_CHUNK_BYTES), ctypes.c_uint64()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            size = self._take(self._log, buffer, _CHUNK_BYTES, byref(dropped))
            if dropped.value:
                logger.warning("%d bytes of Triton's log were dropped: Python could not keep up", dropped.value)
            yield decoder.decode(buffer.raw[:size])

    def _run(self) -> None:
        level = logging.INFO
        quiet = () if has_nvidia_gpu() else _NO_GPU_NOISE
        pending = ""
        for chunk in self._chunks():
            *lines, pending = (pending + chunk).split("\n")
            for line in lines:
                if not line:
                    continue
                level, filename, lineno, message = parse_line(line, level)
                if quiet and level > logging.DEBUG and message.startswith(quiet):
                    level = logging.DEBUG
                if triton_logger.isEnabledFor(level):
                    record = triton_logger.makeRecord(
                        triton_logger.name, level, filename, lineno, "%s", (message,), None, func="tritonserver"
                    )
                    triton_logger.handle(record)


_pump: _LogPump | None = None
_pump_lock = threading.Lock()


def log_pipe_path() -> str:
    """The file path to hand Triton as its log file; starts the reader on first use."""
    global _pump
    with _pump_lock:
        if _pump is None:
            _pump = _LogPump()
        return str(_pump.path)


LOG_FORMATS = {"default": C.LOG_FORMAT_DEFAULT, "ISO8601": C.LOG_FORMAT_ISO8601}


@dataclass(frozen=True)
class LogSettings:
    """Triton's logger as Triton's LogSettings RPC shows it (``log_file`` is empty: the lines come here)."""

    log_file: str = ""
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_verbose_level: int = 0
    log_format: str = "default"

    def updated(self, changes: dict[str, Any]) -> LogSettings:
        """These settings with ``changes`` (Triton's names and types); refused as Triton refuses them, and names
        Triton does not know ignored, as Triton 2.51 ignores them."""
        changes = {k: v for k, v in changes.items() if k in self.__dataclass_fields__}
        for key, value in changes.items():
            if key == "log_file":
                raise TritonError(
                    "log file location can not be updated through network protocol", code=TritonError.UNSUPPORTED
                )
            if key in ("log_info", "log_warning", "log_error") and not isinstance(value, bool):
                raise TritonError(f"expect boolean for '{key}', got: {value!r}", code=TritonError.INVALID_ARG)
            if key == "log_verbose_level" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise TritonError(
                    f"expect unsigned integer for 'log_verbose_level', got: {value!r}", code=TritonError.INVALID_ARG
                )
            if key == "log_format" and value not in LOG_FORMATS:
                raise TritonError(f"invalid argument for log_format, got: {value}", code=TritonError.INVALID_ARG)
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_log_settings(api: C.CApi, settings: LogSettings) -> None:
    """Set Triton's process-wide logger now. Triton keeps no per-server log state: its ``ServerOptionsSetLog*``
    calls change the one logger at once (``tritonserver.cc``: "Logging is global for now"), so a throwaway options
    object sets it as Triton's own LogSettings handler does."""
    options = c_void_p()
    api.check(api.ServerOptionsNew(byref(options)))
    try:
        api.check(api.ServerOptionsSetLogInfo(options, settings.log_info))
        api.check(api.ServerOptionsSetLogWarn(options, settings.log_warning))
        api.check(api.ServerOptionsSetLogError(options, settings.log_error))
        api.check(api.ServerOptionsSetLogVerbose(options, settings.log_verbose_level))
        api.check(api.ServerOptionsSetLogFormat(options, LOG_FORMATS[settings.log_format]))
    finally:
        api.ServerOptionsDelete(options)
