# SPDX-License-Identifier: Apache-2.0
"""Requests built once as protobuf messages, answers decoded to numpy: every data type, the stream's final flag."""

from __future__ import annotations

import numpy as np
from tritonclient.grpc import service_pb2

from triton_dynamo.client.inputs import synthesize_array
from triton_dynamo.dtypes import TRITON_DTYPES
from triton_dynamo.loadgen.wire import ENABLE_EMPTY_FINAL, build_request, decode_response, is_final, response_bytes


def _echo(request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferResponse:
    """What echo_all answers: each input back under its output name, bytes untouched."""
    response = service_pb2.ModelInferResponse(model_name=request.model_name)
    for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
        response.outputs.add(name="OUT_" + tensor.name[3:], datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.append(raw)
    return response


def test_every_data_type_goes_out_and_comes_back_unchanged() -> None:
    rng = np.random.default_rng(1)
    inputs = {f"IN_{t}": synthesize_array(t, (2, 3), rng) for t in TRITON_DTYPES}
    request = build_request("echo_all", inputs)
    assert [t.datatype for t in request.inputs] == list(TRITON_DTYPES)
    assert all(list(t.shape) == [2, 3] for t in request.inputs)
    assert ENABLE_EMPTY_FINAL not in request.parameters
    outputs = decode_response(_echo(request))
    for name, array in inputs.items():
        got = outputs["OUT_" + name[3:]]
        assert got.shape == array.shape and got.dtype == array.dtype, name
        assert got.tolist() == array.tolist(), name
    assert response_bytes(_echo(request)) == sum(len(raw) for raw in request.raw_input_contents)


def test_a_streamed_request_asks_for_the_empty_final_response() -> None:
    request = build_request("repeat", {"VALUES": np.array([1, 2], dtype=np.int32)}, stream=True)
    assert request.parameters[ENABLE_EMPTY_FINAL].bool_param
    response = service_pb2.ModelInferResponse()
    assert not is_final(response)
    response.parameters["triton_final_response"].bool_param = True
    assert is_final(response)
