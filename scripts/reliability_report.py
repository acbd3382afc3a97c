"""Renders docs/reliability.md from the figures the reliability tests recorded (tests/reliability_figures.py).

python scripts/reliability_report.py build/reliability docs/reliability.md [options the tests ran with]
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
        "at most --max-inflight requests and refuses the excess at once (UNAVAILABLE); 'slow' has no queue limit of "
        "Triton's (see the README on Triton's queue policy).",
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
]


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
    head = "| case | " + " | ".join(columns) + " |\n|" + " --- |" * (len(columns) + 1) + "\n"
    body = ""
    for row in rows:
        cells = [str(row["values"].get(c, "")).replace("|", "\\|").replace("\n", " ") for c in columns]
        body += f"| {row['case']} | " + " | ".join(cells) + " |\n"
    return head + body


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    options = sys.argv[3] if len(sys.argv) > 3 else ""
    parts = [
        "# Reliability, measured\n",
        f"Regenerate with `bash scripts/reliability.sh` (add `--long` for the ten-minute soak and 40 s outages). "
        f"This run: {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}{', options: ' + options if options else ''}. The figures come from "
        "the tests themselves (`tests/reliability/`, `tests/e2e/test_bad_input.py`), which also assert the bounds "
        "stated in each section; a bound that did not hold fails its test.\n",
    ]
    for table, title, text in SECTIONS:
        rows = load(folder, table)
        parts.append(f"## {title}\n\n{text}\n")
        parts.append(render_table(rows) if rows else "_not measured in this run_\n")
    out.write_text("\n".join(parts))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
