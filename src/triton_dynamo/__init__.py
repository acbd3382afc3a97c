"""triton-dynamo: NVIDIA Triton Inference Server models served at scale through NVIDIA Dynamo."""

__version__ = "0.1.0"
