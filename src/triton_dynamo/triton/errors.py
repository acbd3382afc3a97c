# SPDX-License-Identifier: Apache-2.0
"""Triton's errors as one Python exception type that keeps Triton's own error code."""

from __future__ import annotations

import enum

from ..errors import Status, TritonDynamoError


class TritonCode(enum.IntEnum):
    """Triton's ``TRITONSERVER_Error_Code`` (tritonserver.h)."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7


# Triton's code -> what the client sees (the project's status table takes it from there).
STATUS_OF_CODE: dict[TritonCode, Status] = {
    TritonCode.UNKNOWN: Status.UNKNOWN,
    TritonCode.INTERNAL: Status.INTERNAL,
    TritonCode.NOT_FOUND: Status.NOT_FOUND,
    TritonCode.INVALID_ARG: Status.INVALID_ARGUMENT,
    TritonCode.UNAVAILABLE: Status.UNAVAILABLE,
    TritonCode.UNSUPPORTED: Status.UNIMPLEMENTED,
    TritonCode.ALREADY_EXISTS: Status.ALREADY_EXISTS,
    TritonCode.CANCELLED: Status.CANCELLED,
}


class TritonError(TritonDynamoError):
    """An error reported by Triton; ``code`` is Triton's :class:`TritonCode` (also reachable as class constants).

    Example:
        >>> err = TritonError("unexpected inference input 'X' for model 'identity'", code=TritonError.INVALID_ARG)
        >>> err.code_name, err.status.name
        ('INVALID_ARG', 'INVALID_ARGUMENT')
    """

    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = TritonCode

    def __init__(self, message: str, *, code: int = TritonCode.INTERNAL) -> None:
        self.code = TritonCode(code) if code in TritonCode._value2member_map_ else TritonCode.UNKNOWN
        super().__init__(message, status=STATUS_OF_CODE[self.code])

    @property
    def code_name(self) -> str:
        return self.code.name

    def __repr__(self) -> str:
        return f"TritonError({self.message!r}, code={self.code_name})"
