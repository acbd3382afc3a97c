# SPDX-License-Identifier: Apache-2.0
"""Triton's LogSettings on the session's Triton: the logger changes at once (lines stop, or change format and still
reach Python logging), and what Triton refuses is refused with Triton's words."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from tests.triton.test_load import IDENTITY_CONFIG
from triton_dynamo.triton import Server, TritonError

TRITON_LOGGER = "triton_dynamo.triton.tritonserver"


async def _reload_and_collect(
    server: Server, caplog: pytest.LogCaptureFixture, timeout_s: float = 5.0
) -> list[logging.LogRecord]:
    """Triton's records while identity reloads (a load with a config reloads it, and Triton logs "successfully
    loaded" at INFO); waits for that line, which the pump thread delivers a moment later."""
    caplog.clear()
    await asyncio.to_thread(server.load, "identity", config=json.dumps(IDENTITY_CONFIG))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = [r for r in caplog.records if r.name == TRITON_LOGGER]
        if any("successfully loaded 'identity'" in r.getMessage() for r in records):
            return records
        await asyncio.sleep(0.05)
    return [r for r in caplog.records if r.name == TRITON_LOGGER]


async def test_log_settings_change_tritons_logger_at_once(
    triton_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRITON_LOGGER)
    before = triton_server.log_settings()
    assert before == {
        "log_file": "",
        "log_info": True,
        "log_warning": True,
        "log_error": True,
        "log_verbose_level": 0,
        "log_format": "default",
    }
    try:
        after = triton_server.update_log_settings({"log_format": "ISO8601"})
        assert after == {**before, "log_format": "ISO8601"}
        records = await _reload_and_collect(triton_server, caplog)
        assert records, "no INFO line from Triton while a model loaded"
        assert [r.filename for r in records if "successfully loaded" in r.getMessage()] == ["model_lifecycle.cc"], [
            (r.filename, r.getMessage()) for r in records
        ]

        assert triton_server.update_log_settings({"log_info": False})["log_info"] is False
        assert await _reload_and_collect(triton_server, caplog, timeout_s=2) == []
    finally:
        triton_server.update_log_settings({k: v for k, v in before.items() if k != "log_file"})
    assert triton_server.log_settings() == before
    assert triton_server.update_log_settings({"log_colour": True}) == before  # ignored, as Triton 2.51 does


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"log_file": "/tmp/x.log"}, TritonError.UNSUPPORTED, "log file location can not be updated through network"),
        ({"log_format": "bad"}, TritonError.INVALID_ARG, "invalid argument for log_format, got: bad"),
        ({"log_error": 1}, TritonError.INVALID_ARG, "expect boolean for 'log_error'"),
        ({"log_verbose_level": -1}, TritonError.INVALID_ARG, "expect unsigned integer for 'log_verbose_level'"),
    ],
)
def test_refused_changes_change_nothing(triton_server: Server, change: dict, code: int, words: str) -> None:
    before = triton_server.log_settings()
    with pytest.raises(TritonError) as info:
        triton_server.update_log_settings(change)
    assert info.value.code == code
    assert words in info.value.message
    assert triton_server.log_settings() == before
