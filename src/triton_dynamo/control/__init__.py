# SPDX-License-Identifier: Apache-2.0
"""The control service: the RPCs of Triton's ``inference.GRPCInferenceService`` beyond inference (server metadata,
statistics, the repository index, loading and unloading, model metadata and config, trace and log settings),
answered by asking every worker's Triton.

The inference RPCs never pass through it: they go to the frontend, straight to the workers.
"""
