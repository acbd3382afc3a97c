# SPDX-License-Identifier: Apache-2.0
"""Parsing Triton's log lines into Python logging records (pure: no Triton)."""

from __future__ import annotations

import logging

import pytest

from triton_dynamo.triton.logs import parse_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'I1124 17:24:55.459293 2685 grpc_server.cc:2558] "Started GRPCInferenceService at 0.0.0.0:18001"',
            (logging.INFO, "grpc_server.cc", 2558, "Started GRPCInferenceService at 0.0.0.0:18001"),
        ),
        (
            'W1124 17:24:55.459293 2685 server.cc:12] "model x failed"',
            (logging.WARNING, "server.cc", 12, "model x failed"),
        ),
        (
            "E1124 17:54:38.738258 15720 model_repository_manager.cc:1460] \"Poll failed for model directory 'a'\"",
            (logging.ERROR, "model_repository_manager.cc", 1460, "Poll failed for model directory 'a'"),
        ),
        (
            'V1124 01:02:03.000001 7 infer_request.cc:900] "[request id: x] prepared"',
            (logging.DEBUG, "infer_request.cc", 900, "[request id: x] prepared"),
        ),
        # Triton writes messages as JSON strings: quotes, backslashes and control characters escaped (these lines
        # are from Triton 2.51).
        (
            "E1124 18:13:21.207511 11224 model_lifecycle.cc:642] \"failed to load 'broken' version 1: Internal: "
            'RuntimeError: refuses\\n\\nAt:\\n  /m/broken/1/model.py(3): initialize\\n"',
            (
                logging.ERROR,
                "model_lifecycle.cc",
                642,
                "failed to load 'broken' version 1: Internal: RuntimeError: refuses\n\nAt:\n  /m/broken/1/model.py(3): "
                "initialize\n",
            ),
        ),
        (
            r'I1124 17:24:55.459293 2685 a.cc:1] "tab\there, \u00e9 and \u0001, and \/ slash"',
            (logging.INFO, "a.cc", 1, "tab\there, \u00e9 and \u0001, and / slash"),
        ),
        # not a JSON string: left as it is (Triton with TRITON_SERVER_ESCAPE_LOG_MESSAGES=0)
        (
            'I1124 17:24:55.459293 2685 a.cc:1] "a" and "b"',
            (logging.INFO, "a.cc", 1, '"a" and "b"'),
        ),
        (
            'E1124 17:54:38.738258 15720 model_repository_manager.cc:1460] "model \'we\\\\ird\\"name\' failed"',
            (logging.ERROR, "model_repository_manager.cc", 1460, "model 'we\\ird\"name' failed"),
        ),
        (
            r'I1124 17:24:55.459293 2685 a.cc:1] "say \"hi\""',
            (logging.INFO, "a.cc", 1, 'say "hi"'),
        ),
        (
            r'I1124 17:24:55.459293 2685 a.cc:1] "C:\\dir\\"',
            (logging.INFO, "a.cc", 1, "C:\\dir\\"),
        ),
        # unquoted messages, padded thread ids, empty messages
        (
            "I1124 17:55:01.452345 15986 pb_stub.cc:2145]  Non-graceful termination detected. ",
            (logging.INFO, "pb_stub.cc", 2145, " Non-graceful termination detected. "),
        ),
        ("W1124 17:24:55.459293   42 x.cc:7] plain text", (logging.WARNING, "x.cc", 7, "plain text")),
        ("E1124 17:24:55.459293 1 x.cc:7]", (logging.ERROR, "x.cc", 7, "")),
        ('I1124 17:24:55.459293 1 x.cc:7] "', (logging.INFO, "x.cc", 7, '"')),
        ('I1124 17:24:55.459293 1 x.cc:7] "\\"', (logging.INFO, "x.cc", 7, '"\\"')),
        ('I1124 17:24:55.459293 1 x.cc:7] ""', (logging.INFO, "x.cc", 7, "")),
    ],
)
def test_parse_record_lines(line: str, expected: tuple) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("previous", [logging.INFO, logging.WARNING, logging.ERROR, logging.DEBUG])
@pytest.mark.parametrize(
    "line",
    [
        "| cache_enabled                    | 0                                         |",
        "+----------------------------------+-------------------------------------------+",
        "Traceback (most recent call last):",
        '  File "/m/1/model.py", line 3, in initialize',
        "X1124 17:24:55.459293 2685 server.cc:12] not a level letter",
        "I1124 17:24:55.459293 2685 server.cc] no line number",
    ],
)
def test_continuation_lines_keep_previous_level(line: str, previous: int) -> None:
    level, filename, lineno, message = parse_line(line, previous)
    assert level == previous
    assert (filename, lineno) == ("tritonserver", 0)
    assert message == line


def test_default_previous_level_is_info() -> None:
    assert parse_line("| a | b |")[0] == logging.INFO
