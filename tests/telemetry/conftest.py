# SPDX-License-Identifier: Apache-2.0
"""A stack that traces: one worker, Dynamo's own spans on, everything exported to a real OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..e2e.processes import StackProcess, start_stack
from .otlp import OtlpReceiver


@pytest.fixture(scope="package")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="package")
def traced_stack(tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver) -> Iterator[StackProcess]:
    extra = (
        "--otlp-endpoint",
        otlp_receiver.endpoint,
        "--trace-sample-ratio",
        "1",
        "--model-name",
        "identity",
        "--model-name",
        "repeat",
        "--model-name",
        "add_sub",
    )
    stack = start_stack(tmp_path_factory.mktemp("traced-stack"), workers=1, extra_args=extra)
    yield stack
    stack.stop()
