# SPDX-License-Identifier: Apache-2.0
"""A small KServe v2 gRPC client over tritonclient: numpy in, numpy out, unary or streaming.

Example:
    >>> client = KServeClient("127.0.0.1:8001")                          # doctest: +SKIP
    >>> client.infer("identity", {"INPUT0": np.arange(3, dtype=np.int32)})  # doctest: +SKIP
    [{'OUTPUT0': array([0, 1, 2], dtype=int32)}]
"""

from __future__ import annotations

import json
import queue
import urllib.request
from collections.abc import Mapping, Sequence

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from ..dtypes import triton_dtype
from ..errors import Status, TritonDynamoError, status_from_reply


def to_infer_inputs(inputs: Mapping[str, np.ndarray]) -> list[grpcclient.InferInput]:
    result = []
    for name, array in inputs.items():
        item = grpcclient.InferInput(name, list(array.shape), triton_dtype(array.dtype))
        item.set_data_from_numpy(array)
        result.append(item)
    return result


class KServeClient:
    """Blocking KServe v2 gRPC calls; errors come back as :class:`TritonDynamoError` with the server's message."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> KServeClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            raise self._error(exc) from None

    def _error(self, exc: InferenceServerException) -> TritonDynamoError:
        status = status_from_reply(exc.status(), exc.message())
        return TritonDynamoError(f"{self.url}: {exc.message()}", status=status)

    def live(self) -> bool:
        return self._call(self.client.is_server_live)

    def repository_index(self) -> list[dict] | None:
        """Every model of the repository with its state (Triton's RepositoryIndex), or None where that RPC is not
        answered (Dynamo's frontend's own port)."""
        try:
            return self.client.get_model_repository_index(as_json=True).get("models", [])
        except InferenceServerException as exc:
            if status_from_reply(exc.status(), None) is Status.UNIMPLEMENTED:
                return None
            raise self._error(exc) from None

    def model_ready(self, model: str) -> bool:
        return self._call(self.client.is_model_ready, model)

    def metadata(self, model: str) -> dict:
        return self._call(self.client.get_model_metadata, model, as_json=True)

    def config(self, model: str) -> dict:
        return self._call(self.client.get_model_config, model, as_json=True)["config"]

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        outputs: Sequence[str] = (),
        request_id: str = "",
        parameters: Mapping | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """One unary ModelInfer; a list with the one response's outputs."""
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs] or None
        result = self._call(
            self.client.infer,
            model,
            to_infer_inputs(inputs),
            outputs=requested,
            request_id=request_id,
            parameters=parameters,
            client_timeout=self.timeout_s,
        )
        return [{o.name: result.as_numpy(o.name) for o in result.get_response().outputs}]

    def stream(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        outputs: Sequence[str] = (),
        request_id: str = "",
        idle_timeout_s: float | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """One request over ModelStreamInfer; every response, until the stream has been quiet ``idle_timeout_s``
        after the last (a decoupled model may send any number, the final one possibly empty)."""
        answers: queue.Queue = queue.Queue()
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs] or None
        self.client.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            self.client.async_stream_infer(
                model,
                to_infer_inputs(inputs),
                outputs=requested,
                request_id=request_id,
                enable_empty_final_response=True,
            )
            responses = []
            while True:
                try:
                    result, error = answers.get(timeout=idle_timeout_s or self.timeout_s)
                except queue.Empty:
                    return responses
                if error is not None:
                    raise TritonDynamoError(f"{self.url}: {error}", status=Status.INTERNAL)
                response = result.get_response()
                if response.outputs:
                    responses.append({o.name: result.as_numpy(o.name) for o in response.outputs})
                final = response.parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    return responses
        finally:
            self.client.stop_stream()


def list_models(metrics_url: str, timeout_s: float = 5.0) -> list[str]:
    """The models the frontend knows, from its ``/v1/models`` on the metrics port."""
    try:
        with urllib.request.urlopen(f"{metrics_url.rstrip('/')}/v1/models", timeout=timeout_s) as response:
            return sorted(m["id"] for m in json.loads(response.read())["data"])
    except (OSError, ValueError, KeyError) as exc:
        raise TritonDynamoError(
            f"cannot list models at {metrics_url}/v1/models: {exc}", status=Status.UNAVAILABLE
        ) from None
