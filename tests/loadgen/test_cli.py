# SPDX-License-Identifier: Apache-2.0
"""``triton-dynamo loadtest``'s options and the Locust command lines it runs (the runs themselves: test_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.processes import REPO_ROOT
from triton_dynamo.errors import ConfigurationError
from triton_dynamo.loadgen.cli import PACKAGE_LOCUSTFILE, locust_argv, parse


def test_the_repositorys_locustfile_and_the_packaged_copy_are_the_same_program() -> None:
    own, *_ = parse([])
    assert own.locustfile_path == REPO_ROOT / "loadtest" / "locustfile.py"

    def code(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.startswith(("from ", "import ", "__all__"))]

    assert code(own.locustfile_path) == code(PACKAGE_LOCUSTFILE)
    assert code(PACKAGE_LOCUSTFILE)[0] == "from triton_dynamo.loadgen.locust_user import KServeUser, SelectedShape"


def test_locust_runs_headless_with_the_reports_in_the_out_dir(tmp_path: Path) -> None:
    argv = ["--url", "h:1", "--users", "3", "--duration-s", "12", "--models", "identity:2", "--check"]
    own, load, passed, extra = parse([*argv, "--", "--only-summary"])
    assert load.models == "identity:2" and load.check
    argv = locust_argv(own, passed, extra, tmp_path)
    assert argv[1:5] == ["-m", "locust", "-f", str(own.locustfile_path)]
    text = " ".join(argv)
    assert "--headless -H h:1 -u 3 -r 8.0 -t 12s" in text
    assert f"--csv {tmp_path / 'stats'} --html {tmp_path / 'report.html'}" in text
    assert f"--summary-json {tmp_path / 'summary.json'}" in text
    assert argv[-4:] == ["--models", "identity:2", "--check", "--only-summary"]


def test_a_shape_with_no_duration_runs_its_own_length(tmp_path: Path) -> None:
    own, _, passed, extra = parse(["--shape", "step", "--duration-s", "0"])
    argv = locust_argv(own, passed, extra, tmp_path)
    assert "-t" not in argv and argv[-2:] == ["--shape", "step"]


@pytest.mark.parametrize("argv", [["--users", "0"], ["--workers", "-1"], ["--models", "identity:0"], ["--shape", "x"]])
def test_bad_options_are_refused_before_anything_runs(argv: list[str]) -> None:
    with pytest.raises((ConfigurationError, SystemExit)):
        parse(argv)
