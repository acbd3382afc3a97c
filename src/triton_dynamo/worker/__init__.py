# SPDX-License-Identifier: Apache-2.0
"""The Dynamo worker that serves every model of a Triton repository, with Triton in its own process."""

from .config import WorkerConfig
from .handler import ModelHandler
from .schema import ModelSchema
from .service import Worker, serve

__all__ = ["ModelHandler", "ModelSchema", "Worker", "WorkerConfig", "serve"]
