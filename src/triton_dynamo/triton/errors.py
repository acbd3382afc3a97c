# SPDX-License-Identifier: Apache-2.0
"""Triton's errors as one Python exception type that keeps Triton's own error code."""

from __future__ import annotations

from ..errors import Status, TritonDynamoError


class TritonError(TritonDynamoError):
    """An error reported by Triton; ``code`` is Triton's ``TRITONSERVER_Error_Code`` (see the class constants).

    Example:
        >>> err = TritonError("unexpected inference input 'X' for model 'identity'", code=TritonError.INVALID_ARG)
        >>> err.code_name, err.status.name
        ('INVALID_ARG', 'INVALID_ARGUMENT')
    """

    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)
    _NAMES = (
        "UNKNOWN",
        "INTERNAL",
        "NOT_FOUND",
        "INVALID_ARG",
        "UNAVAILABLE",
        "UNSUPPORTED",
        "ALREADY_EXISTS",
        "CANCELLED",
    )
    _STATUS = (
        Status.UNKNOWN,
        Status.INTERNAL,
        Status.NOT_FOUND,
        Status.INVALID_ARGUMENT,
        Status.UNAVAILABLE,
        Status.UNIMPLEMENTED,
        Status.ALREADY_EXISTS,
        Status.CANCELLED,
    )

    def __init__(self, message: str, *, code: int = INTERNAL) -> None:
        self.code = code if 0 <= code < len(self._NAMES) else self.UNKNOWN
        super().__init__(message, status=self._STATUS[self.code])

    @property
    def code_name(self) -> str:
        return self._NAMES[self.code]

    def __repr__(self) -> str:
        return f"TritonError({self.message!r}, code={self.code_name})"
