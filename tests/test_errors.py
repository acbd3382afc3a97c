# SPDX-License-Identifier: Apache-2.0
"""The project's error root, its status table, and Triton's error codes mapped onto it (pure)."""

from __future__ import annotations

import pytest

from triton_dynamo.errors import (
    EXIT_CODES,
    ConfigurationError,
    InvalidInput,
    Overloaded,
    RequestTooLarge,
    Status,
    TritonDynamoError,
    client_message,
    exit_code,
    status_from_reply,
)
from triton_dynamo.triton import TritonError
from triton_dynamo.triton.errors import STATUS_OF_CODE, TritonCode


def test_status_table_covers_every_status() -> None:
    assert set(EXIT_CODES) == set(Status)


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_exit_codes_are_failures(status: Status) -> None:
    code = EXIT_CODES[status]
    assert isinstance(code, int)
    assert 0 < code < 256  # a failure, and a valid process exit status


def test_exit_codes_tell_apart_what_a_script_acts_on() -> None:
    codes = dict(EXIT_CODES)
    assert codes[Status.INVALID_ARGUMENT] == 2
    assert codes[Status.NOT_FOUND] == 3
    assert codes[Status.UNAVAILABLE] == 4
    assert codes[Status.CANCELLED] == 130
    assert len({codes[s] for s in (Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.UNAVAILABLE)}) == 3


def test_status_values_are_grpc_codes() -> None:
    assert Status.CANCELLED.value == 1
    assert Status.INVALID_ARGUMENT.value == 3
    assert Status.NOT_FOUND.value == 5
    assert Status.UNIMPLEMENTED.value == 12
    assert Status.INTERNAL.value == 13
    assert Status.UNAVAILABLE.value == 14


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_client_message_for_every_status(status: Status) -> None:
    err = TritonDynamoError("model 'x' has no input 'Y'", status=status)
    assert err.status is status
    assert err.message == "model 'x' has no input 'Y'"
    assert client_message(err) == f"[{status.name}] model 'x' has no input 'Y'"
    assert exit_code(err) == EXIT_CODES[status]


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (TritonDynamoError, Status.INTERNAL),
        (InvalidInput, Status.INVALID_ARGUMENT),
        (RequestTooLarge, Status.RESOURCE_EXHAUSTED),
        (Overloaded, Status.UNAVAILABLE),
        (ConfigurationError, Status.INVALID_ARGUMENT),
    ],
)
def test_error_classes_carry_their_status(cls: type[TritonDynamoError], status: Status) -> None:
    err = cls("something specific")
    assert isinstance(err, TritonDynamoError)
    assert err.status is status
    assert client_message(err) == f"[{status.name}] something specific"
    # an explicit status wins over the class's
    assert cls("x", status=Status.CANCELLED).status is Status.CANCELLED


# TRITONSERVER_Error_Code value (tritonserver.h), its name, and the status a client sees.
TRITON_CODES = [
    (0, "UNKNOWN", Status.UNKNOWN),
    (1, "INTERNAL", Status.INTERNAL),
    (2, "NOT_FOUND", Status.NOT_FOUND),
    (3, "INVALID_ARG", Status.INVALID_ARGUMENT),
    (4, "UNAVAILABLE", Status.UNAVAILABLE),
    (5, "UNSUPPORTED", Status.UNIMPLEMENTED),
    (6, "ALREADY_EXISTS", Status.ALREADY_EXISTS),
    (7, "CANCELLED", Status.CANCELLED),
]


@pytest.mark.parametrize(("code", "name", "status"), TRITON_CODES, ids=[name for _, name, _ in TRITON_CODES])
def test_triton_error_codes(code: int, name: str, status: Status) -> None:
    assert getattr(TritonError, name) == code
    err = TritonError(f"failure {name}", code=code)
    assert isinstance(err, TritonDynamoError)
    assert err.code == code
    assert err.code_name == name
    assert err.status is status
    assert err.message == f"failure {name}"
    assert client_message(err) == f"[{status.name}] failure {name}"
    assert repr(err) == f"TritonError('failure {name}', code={name})"


def test_triton_error_codes_are_all_mapped() -> None:
    assert len(TRITON_CODES) == len(TritonCode) == len(STATUS_OF_CODE)


@pytest.mark.parametrize("code", [-1, 8, 99])
def test_unknown_triton_codes_become_unknown(code: int) -> None:
    err = TritonError("odd", code=code)
    assert err.code == TritonError.UNKNOWN
    assert err.code_name == "UNKNOWN"
    assert err.status is Status.UNKNOWN


def test_triton_error_default_code_is_internal() -> None:
    err = TritonError("boom")
    assert err.code == TritonError.INTERNAL
    assert err.status is Status.INTERNAL


def test_triton_error_is_raisable_and_catchable_as_root() -> None:
    with pytest.raises(TritonDynamoError) as info:
        raise TritonError("not here", code=TritonError.NOT_FOUND)
    assert info.value.status is Status.NOT_FOUND


# What a client saw (gRPC code name, message) -> the status it means. Dynamo's frontend reports a worker's error as
# INTERNAL and quotes the worker's message, whose first bracketed status is the real one.
REPLIES = [
    (
        "StatusCode.INTERNAL",
        "Failed to fold completions stream: Internal: InvalidInput: [INVALID_ARGUMENT] input 'X'",
        Status.INVALID_ARGUMENT,
    ),
    ("INTERNAL", "Internal: [UNAVAILABLE] worker 3 admits 14 requests in flight", Status.UNAVAILABLE),
    ("StatusCode.NOT_FOUND", "Model 'nope' not found", Status.NOT_FOUND),
    ("StatusCode.INVALID_ARGUMENT", "Failed to parse request: Invalid data type", Status.INVALID_ARGUMENT),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", Status.UNAVAILABLE),
    ("StatusCode.UNIMPLEMENTED", "", Status.UNIMPLEMENTED),
    ("StatusCode.INTERNAL", "something broke [not a status] [ALSO_NOT]", Status.INTERNAL),
    (None, "no code at all", Status.UNKNOWN),
    ("StatusCode.DATA_LOSS", "a gRPC code we have no status for", Status.UNKNOWN),
]


@pytest.mark.parametrize(("code_name", "message", "status"), REPLIES)
def test_status_from_reply(code_name: str | None, message: str, status: Status) -> None:
    assert status_from_reply(code_name, message) is status


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_status_from_reply_reads_back_every_client_message(status: Status) -> None:
    err = TritonDynamoError("the problem", status=status)
    assert status_from_reply("StatusCode.INTERNAL", f"Internal: {err}") is status
