"""The control service: the RPCs of Triton's ``inference.GRPCInferenceService`` that Dynamo's frontend does not
answer (server metadata, statistics, the repository index, ...), answered by asking every worker's Triton.

The inference RPCs never pass through it: they go to the frontend, straight to the workers.
"""
