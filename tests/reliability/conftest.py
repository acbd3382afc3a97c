# SPDX-License-Identifier: Apache-2.0
"""A stack of three workers under steady load, for fault tests that kill and restart its parts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..e2e.processes import StackProcess, start_stack


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = start_stack(
        tmp_path_factory.mktemp("fault-stack"),
        workers=3,
        extra_args=("--model-name", "identity", "--grace-period-s", "10"),
    )
    yield stack
    stack.stop()
