# SPDX-License-Identifier: Apache-2.0
"""Helpers of the end-to-end load tests: Locust processes, and the counts the servers and clients expose."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.e2e.processes import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
FRONTEND_REQUESTS = re.compile(r"^dynamo_frontend_requests_total\{([^}]*)\} (\S+)$", re.M)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def frontend_requests(metrics_port: int) -> Counter:
    """Inference requests the frontend counted, by model (unary and stream, every status)."""
    counts: Counter = Counter()
    for labels, value in FRONTEND_REQUESTS.findall(scrape(metrics_port)):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("endpoint") == "tensor":
            counts[fields["model"]] += int(float(value))
    return counts


def start_locust(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m locust -f loadtest/locustfile.py ARGS`` from the repository root, output into ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def poll_while(alive: Callable[[], bool], port: int, patterns: Sequence[str], timeout_s: float = 60) -> str:
    """The first /metrics text of ``port`` that matches every one of ``patterns``, while ``alive()``; '' if none
    did."""
    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        try:
            text = scrape(port)
            if all(re.search(pattern, text, re.M) for pattern in patterns):
                return text
        except OSError:
            pass
        time.sleep(0.2)
    return ""
