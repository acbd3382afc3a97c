# SPDX-License-Identifier: Apache-2.0
"""Clients of a running stack: KServe calls, generated inputs, and the models / infer commands."""
