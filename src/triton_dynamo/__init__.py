# SPDX-License-Identifier: Apache-2.0
"""triton-dynamo: NVIDIA Triton Inference Server models served at scale through NVIDIA Dynamo."""

__version__ = "0.1.0"
