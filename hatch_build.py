# SPDX-License-Identifier: Apache-2.0
"""Build hook: compiles the binding's C callbacks (src/triton_dynamo/triton/_shim.c) into the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ShimBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        package = Path(self.root) / "src" / "triton_dynamo" / "triton"
        spec = importlib.util.spec_from_file_location("_build_shim", package / "_build_shim.py")
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        library = builder.compile_shim(package / builder.LIBRARY_NAME)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(str(library.relative_to(self.root)))
