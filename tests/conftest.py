# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: one real in-process Triton for the whole session, serving the sample models of ``model_repo``.

Every async test runs in the session's event loop (the binding keeps one event channel per loop, and the session
server's requests are driven from it).
"""

from __future__ import annotations

import os

# The session's in-process Triton forks its python backend stubs from this process, which by then runs gRPC clients
# of the end-to-end tests: one fresh-clone run hung for good in ServerNew, its forked child single-threaded on a
# futex before exec. The worker process sets the same for the same fork (triton_dynamo.cli); set before grpc loads.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import shutil
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from pytest_asyncio import is_async_test

from triton_dynamo.loadgen.checks import load_classifier
from triton_dynamo.triton import Options, Server

from .e2e.processes import StackProcess, start_stack

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_REPO = REPO_ROOT / "model_repo"
SAMPLE_MODELS = ("add_sub", "classifier", "echo_all", "identity", "identity_fp32", "repeat", "slow", "string_ops")

# Triton's data types as model configs spell them (BYTES is TYPE_STRING there), in tritonserver.h order.
CONFIG_TYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "STRING",
)
# The model echo_nd: echo_all's code with rank-3 tensors of every type, and one rank-9 FP32 tensor (more dimensions
# than the binding reads inline from a response).
ECHO_ND = "echo_nd"
ECHO_ND_DIMS = 3
DEEP_DIMS = 9
# The model slow_queued: slow's code behind Triton's own queue limit, for the binding's tests of Triton's refusals
# (model_repo/slow says why the sample itself has none).
SLOW_QUEUED = "slow_queued"
SLOW_QUEUE_SIZE = 8


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="also run the long variants (soak, long outages)")


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether ``--long`` was given: tests with a short and a long variant pick their duration from it."""
    return bool(request.config.getoption("--long"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: a long variant, run only with --long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run every async test in the session's event loop, unless it names its own loop scope; leave long variants
    out unless ``--long`` is given."""
    if not config.getoption("--long"):
        long_variants = [item for item in items if "long" in item.keywords]
        config.hook.pytest_deselected(items=long_variants)
        items[:] = [item for item in items if "long" not in item.keywords]
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if not is_async_test(item):
            continue
        marker = item.get_closest_marker("asyncio")
        if marker is None or "loop_scope" not in marker.kwargs:
            item.add_marker(session_loop, append=False)


def _echo_nd_config() -> str:
    dims = ", ".join(["-1"] * ECHO_ND_DIMS)
    deep = ", ".join(["-1"] * DEEP_DIMS)
    inputs = [f'  {{ name: "IN_{t}" data_type: TYPE_{t} dims: [ {dims} ] optional: true }}' for t in CONFIG_TYPES]
    outputs = [f'  {{ name: "OUT_{t}" data_type: TYPE_{t} dims: [ {dims} ] }}' for t in CONFIG_TYPES]
    inputs.append(f'  {{ name: "IN_DEEP" data_type: TYPE_FP32 dims: [ {deep} ] optional: true }}')
    outputs.append(f'  {{ name: "OUT_DEEP" data_type: TYPE_FP32 dims: [ {deep} ] }}')
    return "\n".join(
        [
            f'name: "{ECHO_ND}"',
            'backend: "python"',
            "max_batch_size: 0",
            "input [",
            ",\n".join(inputs),
            "]",
            "output [",
            ",\n".join(outputs),
            "]",
            "instance_group [ { kind: KIND_CPU count: 1 } ]",
            "",
        ]
    )


@pytest.fixture(scope="session")
def extra_model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second repository for the session server with ``echo_nd`` (echo_all's model.py, multi-dimensional) and
    ``slow_queued`` (slow's model.py with Triton's queue limited)."""
    root = tmp_path_factory.mktemp("extra_model_repo")
    version = root / ECHO_ND / "1"
    version.mkdir(parents=True)
    shutil.copy(MODEL_REPO / "echo_all" / "1" / "model.py", version / "model.py")
    (root / ECHO_ND / "config.pbtxt").write_text(_echo_nd_config())
    queued = root / SLOW_QUEUED
    shutil.copytree(MODEL_REPO / "slow", queued)
    config = (queued / "config.pbtxt").read_text().replace('name: "slow"', f'name: "{SLOW_QUEUED}"')
    limit = f"dynamic_batching {{ default_queue_policy {{ max_queue_size: {SLOW_QUEUE_SIZE} }} }}"
    (queued / "config.pbtxt").write_text(config.replace("dynamic_batching { }", limit))
    return root


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def triton_server(extra_model_repo: Path) -> AsyncIterator[Server]:
    """One Triton for the session: every model of ``model_repo`` plus ``echo_nd``, loaded and ready.

    Started and stopped on threads so that the session loop keeps running meanwhile: the binding deletes finished
    requests on that loop, and Triton waits for them before it can unload a model.
    """
    server = Server(Options(model_repository=[MODEL_REPO, extra_model_repo]))
    await asyncio.to_thread(server.start, wait_until_ready=True, timeout_s=120)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture(scope="session")
def classifier_reference() -> types.SimpleNamespace:
    """The classifier's own ``weights()`` and ``forward()`` from its model.py (as the load generator's check loads
    them), to compute the answers a test expects."""
    layers, forward = load_classifier(MODEL_REPO)
    return types.SimpleNamespace(weights=lambda: layers, forward=forward)


@pytest.fixture(scope="session")
def file_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """``triton-dynamo up`` with two workers, file discovery and the TCP request plane: the stack a user starts."""
    stack = start_stack(tmp_path_factory.mktemp("file-stack"), workers=2)
    yield stack
    stack.stop()
