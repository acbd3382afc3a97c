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
import re


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


class ConfigurationError(TritonDynamoError):
    """A process was started with options that cannot work; raised when the configuration object is built."""

    status = Status.INVALID_ARGUMENT


# The one table: status -> the CLI's exit code. What a client reads first is the status's name, in brackets.
EXIT_CODES: dict[Status, int] = {
    Status.CANCELLED: 130,
    Status.UNKNOWN: 1,
    Status.INVALID_ARGUMENT: 2,
    Status.DEADLINE_EXCEEDED: 1,
    Status.NOT_FOUND: 3,
    Status.ALREADY_EXISTS: 1,
    Status.RESOURCE_EXHAUSTED: 1,
    Status.FAILED_PRECONDITION: 1,
    Status.UNIMPLEMENTED: 1,
    Status.INTERNAL: 1,
    Status.UNAVAILABLE: 4,
}

# "[INVALID_ARGUMENT] ..." as client_message writes it, wherever a reply quotes it.
_BRACKETED_STATUS = re.compile(r"\[([A-Z_]+)\]")


def client_message(err: TritonDynamoError) -> str:
    """The text a client reads for ``err``: its status in brackets, then the message that names the problem."""
    return f"[{err.status.name}] {err.message}"


def exit_code(err: TritonDynamoError) -> int:
    """The CLI's exit status for ``err``."""
    return EXIT_CODES[err.status]


def status_from_reply(code_name: str | None, message: str | None) -> Status:
    """The status of a failed call as its client saw it: the first bracketed status of ours in the message (Dynamo's
    frontend reports every worker error as INTERNAL and quotes the worker's message), else the gRPC code's name
    (``INVALID_ARGUMENT`` or ``StatusCode.INVALID_ARGUMENT``), else UNKNOWN.

    Example:
        >>> status_from_reply("StatusCode.INTERNAL", "Internal: InvalidInput: [INVALID_ARGUMENT] input 'X' ...").name
        'INVALID_ARGUMENT'
        >>> status_from_reply("StatusCode.UNAVAILABLE", "failed to connect to all addresses").name
        'UNAVAILABLE'
    """
    for label in _BRACKETED_STATUS.findall(message or ""):
        if label in Status.__members__:
            return Status[label]
    name = (code_name or "").rsplit(".", 1)[-1]
    return Status.__members__.get(name, Status.UNKNOWN)
