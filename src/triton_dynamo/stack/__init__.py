# SPDX-License-Identifier: Apache-2.0
"""The whole system on one machine: Dynamo's frontend and N workers as supervised child processes."""

from .config import StackConfig
from .launcher import Stack, build_specs

__all__ = ["Stack", "StackConfig", "build_specs"]
