# SPDX-License-Identifier: Apache-2.0
"""A package's public names imported on first use (PEP 562), so that importing one light module of a package does
not import its heavy ones.

Example:
    >>> __getattr__ = lazy_attributes("triton_dynamo.worker", {"WorkerConfig": ".config"})
    >>> __getattr__("WorkerConfig").__name__
    'WorkerConfig'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that imports ``where[name]`` (relative to ``package``) when
    ``name`` is first asked for, and keeps it in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
