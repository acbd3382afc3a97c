# SPDX-License-Identifier: Apache-2.0
"""Metrics and traces of the worker: what operators look at."""
