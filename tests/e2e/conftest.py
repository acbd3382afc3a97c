# SPDX-License-Identifier: Apache-2.0
"""End-to-end fixtures: the real Dynamo frontend, real workers with real Triton, and real etcd and NATS.

One stack per discovery mode: ``file_stack`` (a folder, TCP request plane, nothing else; in tests/conftest.py, as the
load generator's tests use it too) and ``etcd_nats_stack`` (etcd discovery, NATS request plane), which lives only as
long as these tests. ``stack`` runs a test on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .processes import StackProcess, start_etcd, start_nats, start_stack


@pytest.fixture(scope="package")
def etcd_nats_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    workdir = tmp_path_factory.mktemp("etcd-nats")
    etcd, nats = start_etcd(workdir), start_nats(workdir)
    env = {"ETCD_ENDPOINTS": f"http://127.0.0.1:{etcd.port}", "NATS_SERVER": f"nats://127.0.0.1:{nats.port}"}
    try:
        stack = start_stack(
            workdir / "stack", workers=2, extra_args=("--discovery", "etcd", "--request-plane", "nats"), env=env
        )
        yield stack
        stack.stop()
    finally:
        nats.stop()
        etcd.stop()


@pytest.fixture(params=["file", "etcd_nats"], scope="package")
def stack(request: pytest.FixtureRequest) -> StackProcess:
    return request.getfixturevalue(f"{request.param}_stack")
