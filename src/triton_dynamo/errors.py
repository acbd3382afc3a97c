# SPDX-License-Identifier: Apache-2.0
"""The one exception root of triton-dynamo, and the one table that says what a client sees for each status.

Every error the project raises on purpose derives from :class:`TritonDynamoError` and carries a :class:`Status`.
The worker turns any of them into the message Dynamo's frontend hands to the client (the frontend reports every worker
error as gRPC INTERNAL, so the status travels as a prefix of the message text); the CLI turns them into exit codes.

Example:
    >>> err = InvalidInput("input 'INPUT0' has dtype INT64; model 'identity' expects INT32")
    >>> err.status.name
    'INVALID_ARGUMENT'
    >>> str(err)
    "[INVALID_ARGUMENT] input 'INPUT0' has dtype INT64; model 'identity' expects INT32"
"""

from __future__ import annotations

import enum


class Status(enum.Enum):
    """What went wrong, in the vocabulary of gRPC status codes (value: the gRPC code number)."""

    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


class TritonDynamoError(Exception):
    """Root of every error triton-dynamo raises on purpose; ``status`` says what kind of failure it is."""

    status: Status = Status.INTERNAL

    def __init__(self, message: str, *, status: Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        # What Dynamo forwards to the client is str() of the exception: status first, then the problem.
        return client_message(self)


class InvalidInput(TritonDynamoError):
    """The request does not fit the model: unknown, missing or malformed tensors, wrong dtype or shape."""

    status = Status.INVALID_ARGUMENT


class RequestTooLarge(TritonDynamoError):
    """A tensor or request is over the configured size limit."""

    status = Status.RESOURCE_EXHAUSTED


class Overloaded(TritonDynamoError):
    """The worker has as many requests in flight as it admits; the client should retry later or elsewhere."""

    status = Status.UNAVAILABLE


class ModelNotFound(TritonDynamoError):
    status = Status.NOT_FOUND


class ConfigurationError(TritonDynamoError):
    """A process was started with options that cannot work; raised when the configuration object is built."""

    status = Status.INVALID_ARGUMENT


# The one table: status -> (what the client reads first, process exit code for the CLI).
STATUS_TABLE: dict[Status, tuple[str, int]] = {
    Status.CANCELLED: ("CANCELLED", 130),
    Status.UNKNOWN: ("UNKNOWN", 1),
    Status.INVALID_ARGUMENT: ("INVALID_ARGUMENT", 2),
    Status.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", 1),
    Status.NOT_FOUND: ("NOT_FOUND", 3),
    Status.ALREADY_EXISTS: ("ALREADY_EXISTS", 1),
    Status.RESOURCE_EXHAUSTED: ("RESOURCE_EXHAUSTED", 1),
    Status.FAILED_PRECONDITION: ("FAILED_PRECONDITION", 1),
    Status.UNIMPLEMENTED: ("UNIMPLEMENTED", 1),
    Status.INTERNAL: ("INTERNAL", 1),
    Status.UNAVAILABLE: ("UNAVAILABLE", 4),
}


def client_message(err: TritonDynamoError) -> str:
    """The text a client reads for ``err``: its status in brackets, then the message that names the problem."""
    label, _ = STATUS_TABLE[err.status]
    return f"[{label}] {err.message}"


def exit_code(err: TritonDynamoError) -> int:
    """The CLI's exit status for ``err``."""
    return STATUS_TABLE[err.status][1]
