# SPDX-License-Identifier: Apache-2.0
"""The Dynamo worker that serves every model of a Triton repository, with Triton in its own process."""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# Imported on first use: the control service and the local launcher read the worker's config and model-set store,
# and must not load Triton's binding (which the worker's service and handler import) for that.
_WHERE = {
    "WorkerConfig": ".config",
    "ModelHandler": ".handler",
    "ModelSchema": ".schema",
    "Worker": ".service",
    "serve": ".service",
}

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .handler import ModelHandler
    from .schema import ModelSchema
    from .service import Worker, serve

__getattr__ = lazy_attributes(__name__, _WHERE)


__all__ = ["ModelHandler", "ModelSchema", "Worker", "WorkerConfig", "serve"]
