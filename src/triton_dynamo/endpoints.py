# SPDX-License-Identifier: Apache-2.0
"""The Dynamo endpoint names that both sides agree on: the workers serve them, the control service calls them.

A module of its own so that the control service (a process without Triton) need not import the worker package.

Example:
    >>> control_endpoint_path("triton", "worker")
    'triton.worker.control'
"""

from __future__ import annotations

CONTROL_ENDPOINT = "control"


def control_endpoint_path(namespace: str, component: str) -> str:
    """The one endpoint that every worker of ``namespace.component`` serves, each as an instance of its own (model
    endpoints are per worker: see :mod:`triton_dynamo.worker.served`)."""
    return f"{namespace}.{component}.{CONTROL_ENDPOINT}"
