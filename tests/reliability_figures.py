# SPDX-License-Identifier: Apache-2.0
"""Figures that tests measure for docs/reliability.md: each test records what it saw, a script renders the table.

Figures go to JSON lines under ``$TRITON_DYNAMO_FIGURES_DIR`` (default ``build/reliability``), one file per table;
``scripts/reliability.sh`` runs the tests and renders ``docs/reliability.md`` from them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def figures_dir() -> Path:
    return Path(os.environ.get("TRITON_DYNAMO_FIGURES_DIR", ROOT / "build" / "reliability"))


def record_figure(table: str, case: str, values: dict) -> None:
    """Append one row (``case`` and its ``values``) to ``table``."""
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    row = {"case": case, "values": values, "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    with open(folder / f"{table}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
