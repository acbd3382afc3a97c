# SPDX-License-Identifier: Apache-2.0
"""Renders docs/reliability.md from the figures the reliability tests recorded (tests/reliability_figures.py).

python scripts/reliability_report.py build/reliability docs/reliability.md [options the tests ran with]
python scripts/reliability_report.py build/reliability docs/reliability.md --only engine
    rewrites that one section in place, keeping the others' figures (each section says what it was measured on)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

SECTIONS = [
    (
        "faults",
        "Faults under steady load",
        "A client in the test sends requests all the time (threads, one request after another) while a part of the "
        "stack is killed or restarted. A failed request is any request that did not return the right answer.",
    ),
    ("model_failures", "Models that do not load", "A worker started on a repository with broken models."),
    (
        "overload",
        "Overload",
        "Open-loop load above capacity: requests are sent at a fixed rate whatever the answers. Each worker admits "
        "at most --max-inflight requests and hands the excess to the other worker; a request is refused at once "
        "(UNAVAILABLE) when that one is full too. 'slow' has no queue limit of Triton's (see the README on Triton's "
        "queue policy).",
    ),
    (
        "soak",
        "Soak",
        "Open-loop load at 70% of capacity, beside a CPU hog on one core; memory, file descriptors and threads of "
        "the frontend and the workers sampled every 5 s.",
    ),
    (
        "bad_input",
        "Bad input",
        "Each case through the frontend, with tritonclient or raw KServe messages; after each, a good request must "
        "succeed. What the client sees is quoted (truncated).",
    ),
    (
        "engine",
        "The Compose stack on a Docker engine",
        "compose.yaml + compose.cpu.yaml on a real Docker engine (`bash scripts/compose-engine.sh`, tests/engine/): "
        "Debian's dockerd 20.10 and Compose 5.6.1, images built here, the stand-ins of tests/engine/standins/ for etcd,"
        " NATS, Prometheus and the Python base (the proxy, Debian's nghttpx, is built on it). Load: 4 client threads, "
        "one identity request after another, on the published port of the TLS proxy's plaintext listener. A killed "
        "worker cannot unregister: until its etcd lease runs out, Dynamo's frontend may route requests to its address, "
        "and they fail (the local launcher revokes the lease at once). After a failure the frontend keeps the worker "
        "out of routing until its next reconcile, which comes a fixed time after the previous one, not after the "
        "failure: the dead worker comes back at a random moment within it. In Compose the workers' lease is 3 s "
        "(WORKER_LEASE_TTL_S; Dynamo's default 10 s) and that time is 600 s (FRONTEND_UNREACHABLE_WORKER_HOLD_S; "
        "Dynamo's default 5 s), so the registration is gone first in all but about 1 kill in 200. With Dynamo's "
        "defaults a kill failed 5 to 9 requests over 12 to 20 s; with a 10 s hold, 3 runs of 8 failed 5 to 7 over 3.1 "
        "to 3.9 s. The tests bound the failures by count (at most the requests in flight at the kill, none sent after "
        "the first failure came back) and in time (none once the lease has expired, 3 s after the kill, with 2 s to "
        "spare).",
    ),
]


WIDEST_TABLE = 8


def load(folder: Path, table: str) -> list[dict]:
    path = folder / f"{table}.jsonl"
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[row["case"]] = row  # the latest run of a case wins
    return list(rows.values())


def render_table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row["values"] if k not in columns]
    if len(columns) > WIDEST_TABLE:  # cases that share few columns: each case's figures in one cell
        body = "".join(
            f"| {row['case']} | "
            + "; ".join(f"{k}: {v}" for k, v in row["values"].items()).replace("|", "\\|")
            + " |\n"
            for row in rows
        )
        return "| case | figures |\n| --- | --- |\n" + body
    head = "| case | " + " | ".join(columns) + " |\n|" + " --- |" * (len(columns) + 1) + "\n"
    body = ""
    for row in rows:
        cells = [str(row["values"].get(c, "")).replace("|", "\\|").replace("\n", " ") for c in columns]
        body += f"| {row['case']} | " + " | ".join(cells) + " |\n"
    return head + body


def render_section(folder: Path, table: str, title: str, text: str) -> str:
    rows = load(folder, table)
    return f"## {title}\n\n{text}\n\n" + (render_table(rows) if rows else "_not measured in this run_\n")


def replace_section(document: str, title: str, section: str) -> str:
    """``document`` with the section headed ``## title`` replaced by ``section`` (appended when absent)."""
    head = f"## {title}\n"
    if head not in document:
        return document.rstrip("\n") + "\n\n" + section
    start = document.index(head)
    following = document.find("\n## ", start + len(head))
    rest = document[following + 1 :] if following != -1 else ""
    return document[:start] + section + ("\n" + rest if rest else "")


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    if len(sys.argv) > 4 and sys.argv[3] == "--only":
        table = sys.argv[4]
        _, title, text = next(section for section in SECTIONS if section[0] == table)
        stamp = f"Measured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores."
        section = render_section(folder, table, title, f"{text} {stamp}")
        out.write_text(replace_section(out.read_text(), title, section))
        print(f"written: the {title!r} section of {out}")
        return
    options = sys.argv[3] if len(sys.argv) > 3 else ""
    parts = [
        "# Reliability, measured\n",
        f"Regenerate with `bash scripts/reliability.sh` (add `--long` for the ten-minute soak and 40 s outages). "
        f"This run: {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}{', options: ' + options if options else ''}. The figures come from "
        "the tests themselves (`tests/reliability/`, `tests/e2e/test_bad_input.py`, `tests/engine/`), which also "
        "assert the bounds stated in each section; a bound that did not hold fails its test.\n",
    ]
    for table, title, text in SECTIONS:
        parts.append(render_section(folder, table, title, text))
    out.write_text("\n".join(parts))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
