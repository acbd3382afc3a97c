# SPDX-License-Identifier: Apache-2.0
"""A Locust load generator for KServe v2 gRPC: weighted models, generated or recorded inputs, unary and streamed
requests, optional answer checks, load shapes (constant, step ramp with its knee, spike), HDR latency merged across
Locust workers, Prometheus client metrics, and a JSON summary.

Modules that import Locust (and so monkey-patch the process with gevent) are ``locust_plugin`` and ``locust_user``
only; everything else is plain Python that tests and other commands can import safely.
"""
