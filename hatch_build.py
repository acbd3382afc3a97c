# SPDX-License-Identifier: Apache-2.0
"""Build hook: compiles the package's C files into it: the binding's callbacks (triton/_shim.c -> _tdshim.so) and the
worker's list converter (worker/_lists.c -> _tdlists.so)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ShimBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        package = Path(self.root) / "src" / "triton_dynamo"
        spec = importlib.util.spec_from_file_location("_build_shim", package / "triton" / "_build_shim.py")
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        libraries = [
            builder.compile_shim(package / "triton" / builder.LIBRARY_NAME),
            builder.compile_shim(package / "worker" / "_tdlists.so", source=package / "worker" / "_lists.c"),
        ]
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"] += [str(library.relative_to(self.root)) for library in libraries]
