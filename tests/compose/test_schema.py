# SPDX-License-Identifier: Apache-2.0
"""The compose files against the Compose specification's JSON schema (check-jsonschema), each alone and as Compose
merges them, and Compose's own reading of every documented combination (`docker compose config`: no engine needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .tools import COMBINATIONS, COMPOSE_FILES, REPO_ROOT, check_jsonschema, run_compose

# Compose's merge tags (`!reset`, `!override`) are YAML tags that a plain YAML parser does not know; the schema
# sees the value they carry.
MERGE_TAG = re.compile(r"!(?:reset|override)\b ?")


def test_each_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    paths = []
    for name in COMPOSE_FILES:
        text = (REPO_ROOT / name).read_text()
        if MERGE_TAG.search(text):
            path = tmp_path / name
            path.write_text(MERGE_TAG.sub("", text))
            paths.append(path)
        else:
            paths.append(REPO_ROOT / name)
    done = check_jsonschema(paths)
    assert done.returncode == 0, done.stdout + done.stderr


def test_merged_configurations_validate_against_the_compose_spec(
    configs: dict[tuple[str, ...], dict[str, Any]], tmp_path: Path
) -> None:
    paths = []
    for files, config in configs.items():
        path = tmp_path / ("+".join(files) + ".json")
        path.write_text(json.dumps(config))
        paths.append(path)
    done = check_jsonschema(paths)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("files", COMBINATIONS, ids=["+".join(f) for f in COMBINATIONS])
def test_compose_reads_every_documented_combination(files: tuple[str, ...]) -> None:
    for profiles in ((), ("load", "gpu")):
        done = run_compose(files, "config", "--quiet", profiles=profiles)
        assert done.returncode == 0, done.stderr
        assert "WARN" not in done.stderr, done.stderr


def test_each_file_says_how_to_combine_it() -> None:
    assert (
        "docker compose -f compose.yaml -f compose.observability.yaml up -d" in (REPO_ROOT / "compose.yaml").read_text()
    )
    for name in ("compose.observability.yaml", "compose.cpu.yaml", "compose.multigpu.yaml"):
        assert f"docker compose -f compose.yaml -f {name} up -d" in (REPO_ROOT / name).read_text(), name
