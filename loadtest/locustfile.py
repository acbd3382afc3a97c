# SPDX-License-Identifier: Apache-2.0
"""Locust load test of a triton-dynamo stack over KServe v2 gRPC: ``locust -f loadtest/locustfile.py --help``.

Everything lives in the package ``triton_dynamo.loadgen``; this file only shows Locust the user and the shape.
See loadtest/README.md.
"""

from triton_dynamo.loadgen.locust_user import KServeUser, SelectedShape

__all__ = ["KServeUser", "SelectedShape"]
