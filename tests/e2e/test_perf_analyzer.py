# SPDX-License-Identifier: Apache-2.0
"""Triton's own perf_analyzer against the stack's one port, as a Triton user runs it (scripts/perf-analyzer.sh):
it measures through the frontend and reads the server's side of each measurement window from ModelStatistics, which
the control service sums over both workers."""

from __future__ import annotations

import csv
import ctypes.util
import re
import subprocess
from pathlib import Path

import pytest

from .processes import REPO_ROOT, StackProcess

SCRIPT = REPO_ROOT / "scripts" / "perf-analyzer.sh"

# Correctness, not speed, is under test: a window counts whatever this shared machine's noise did to it.
# (perf_analyzer otherwise repeats windows until three agree within 10%, and fails when ten do not.)
WINDOWS = ("--measurement-interval", "1000", "--stability-percentage", "1000")


@pytest.fixture
def one_port(stack: StackProcess) -> str:
    if not stack.proxied:
        pytest.skip("no one-port router here: inference and ModelStatistics are on different ports")
    if ctypes.util.find_library("b64") is None:
        pytest.skip("perf_analyzer needs libb64.so.0d (Debian: libb64-0d; scripts/test.sh installs it)")
    return stack.grpc_url


def perf_analyzer(url: str, tmp_path: Path, *args: str) -> tuple[str, dict[str, str]]:
    """perf_analyzer's report and the row of its CSV file, for one concurrency."""
    report = tmp_path / "perf.csv"
    done = subprocess.run(
        ["bash", str(SCRIPT), "-i", "grpc", "-u", url, *WINDOWS, "-f", str(report), "--verbose-csv", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = list(csv.DictReader(report.read_text().splitlines()))
    return done.stdout, row


def _count(report: str, label: str) -> int:
    found = re.findall(rf"{label}: (\d+)", report)
    assert len(found) == 1, f"{label!r} once in:\n{report}"
    return int(found[0])


def test_perf_analyzer_reads_the_fleets_statistics_through_the_one_port(one_port: str, tmp_path: Path) -> None:
    report, row = perf_analyzer(
        one_port, tmp_path, "-m", "identity_fp32", "--shape", "INPUT0:16", "--concurrency-range", "2"
    )
    client_count = _count(report, "Request count")
    server_count = _count(report, "Inference count")
    assert client_count > 100
    # The client counts the calls completed in its window; the server's count is the difference of two ModelStatistics
    # answers, each taken while calls go on (a fan-out to both workers, slower on a busy machine), so the two windows'
    # edges differ by that much. One worker's statistics alone would be about half of the client's count.
    assert abs(server_count - client_count) <= max(4, client_count // 10), report
    assert _count(report, "Successful request count") == server_count
    assert int(row["Server Compute Infer"]) > 0
    assert float(row["Inferences/Second"]) > 0


def test_perf_analyzer_streams_a_decoupled_model(one_port: str, tmp_path: Path) -> None:
    # repeat answers once per element of VALUES; zeros make DELAY_MS 0 (random data would make it sleep).
    args = ("-m", "repeat", "--async", "--streaming", "--shape", "VALUES:4", "--input-data", "zero")
    report, row = perf_analyzer(one_port, tmp_path, *args, "--concurrency-range", "2")
    client_count = _count(report, "Request count")
    assert client_count > 20
    assert abs(_count(report, "Inference count") - client_count) <= max(4, client_count // 10), report
    # Four responses per call; a call in flight at either edge of the window (2 at most per edge) has up to three of
    # them on the other side.
    responses_per_request = float(row["Response Throughput"]) / float(row["Inferences/Second"])
    assert abs(responses_per_request - 4) <= 12 / client_count + 0.01, report
