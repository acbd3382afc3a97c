# SPDX-License-Identifier: Apache-2.0
"""Waiting until the stack really serves: every worker has registered its models, and each is ready at the
frontend."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import Status, TritonDynamoError

logger = logging.getLogger(__name__)


def worker_health(url: str, timeout_s: float = 2.0) -> dict | None:
    """A worker's /health document when it answers 200, else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def served_models(ready_file: Path) -> set[str] | None:
    """The models a worker wrote to its ready file once it had registered them all; None until then."""
    try:
        return set(json.loads(ready_file.read_text())["models"])
    except (OSError, ValueError, KeyError):
        return None


async def wait_until_ready(
    grpc_url: str, ready_files: Sequence[Path], timeout_s: float, failed: asyncio.Event | None = None
) -> list[str]:
    """Return the served models once every worker has registered its models and the frontend says each model is
    ready. Raises :class:`TritonDynamoError` (UNAVAILABLE) on timeout, or as soon as ``failed`` is set."""
    import tritonclient.grpc.aio as grpcclient

    deadline = time.monotonic() + timeout_s
    client = grpcclient.InferenceServerClient(grpc_url)
    waiting_for = "workers"
    try:
        while time.monotonic() < deadline:
            if failed is not None and failed.is_set():
                raise TritonDynamoError("a process of the stack keeps failing", status=Status.UNAVAILABLE)
            served = [served_models(path) for path in ready_files]
            if all(models is not None for models in served):
                models = set.intersection(*served)
                waiting_for = "the frontend"
                if models and await _frontend_ready(client, models):
                    return sorted(models)
            await asyncio.sleep(0.25)
    finally:
        await client.close()
    raise TritonDynamoError(
        f"stack not ready after {timeout_s:.0f} s (waiting for {waiting_for})", status=Status.UNAVAILABLE
    )


async def _frontend_ready(client, models: set[str]) -> bool:
    try:
        if not await client.is_server_live():
            return False
        return all(await asyncio.gather(*(client.is_model_ready(m) for m in models)))
    except Exception as exc:  # the frontend is still starting: connection refused and the like
        logger.debug("frontend not ready yet: %s", exc)
        return False


async def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Return once ``host:port`` accepts a connection; raises UNAVAILABLE after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise TritonDynamoError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s", status=Status.UNAVAILABLE)
