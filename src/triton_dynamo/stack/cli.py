# SPDX-License-Identifier: Apache-2.0
"""``triton-dynamo up``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .config import StackConfig
from .launcher import Stack


def up(argv: Sequence[str]) -> int:
    config = StackConfig.from_args(argv)
    asyncio.run(Stack(config, announce=lambda line: print(line, flush=True)).run())
    return 0
