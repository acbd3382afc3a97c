# SPDX-License-Identifier: Apache-2.0
"""The control service's gRPC server: Triton's ``inference.GRPCInferenceService`` for the RPCs that Dynamo's frontend
does not answer, each answered from every worker's Triton (:mod:`.fleet`) merged into one server's answer
(:mod:`.merge`). Inference stays on the frontend: an inference RPC sent here is refused with the frontend's address.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2_grpc
from tritonclient.grpc import model_config_pb2, service_pb2_grpc
from tritonclient.grpc import service_pb2 as pb

from ..errors import TritonDynamoError
from ..worker.model_set import model_set_store
from .config import ControlConfig
from .fleet import Fleet
from .health import FrontendReadiness, ReadinessHealth
from .merge import merge_index, merge_statistics, server_metadata
from .repository import RepositoryControl, load_arguments

logger = logging.getLogger(__name__)

SHARED_MEMORY_MESSAGE = (
    "shared memory is not supported by triton-dynamo: each request is served by a Triton inside a worker process, "
    "often on another host, which cannot read a region registered with this endpoint; send the tensor data in the "
    "request instead"
)


def our_version() -> str:
    try:
        return importlib.metadata.version("triton-dynamo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _refuse(message: str) -> Callable[..., Awaitable[NoReturn]]:
    """An RPC method that answers UNIMPLEMENTED with ``message``."""

    async def refuse(self: Any, request: Any, context: Any) -> NoReturn:
        await _abort(context, "UNIMPLEMENTED", message)

    return refuse


class ControlServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """What a Triton client sees of the fleet outside inference."""

    def __init__(self, fleet: Fleet, config: ControlConfig, repository: RepositoryControl | None = None) -> None:
        self.fleet = fleet
        self.config = config
        self.repository = repository
        self.version = our_version()

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=bool(self.fleet.workers()))

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        results = await self._ask(context, "server_metadata")
        return json_format.ParseDict(server_metadata(results, self.version), pb.ServerMetadataResponse())

    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        results = await self._ask(context, "statistics", name=request.name, version=request.version)
        merged = merge_statistics(results)
        return json_format.ParseDict(merged, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        results = await self._ask(context, "repository_index", ready=request.ready)
        models = [pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in merge_index(results)]
        return pb.RepositoryIndexResponse(models=models)

    async def LogSettings(self, request: Any, context: Any) -> pb.LogSettingsResponse:
        changes = {
            key: getattr(value, value.WhichOneof("parameter_choice"))
            for key, value in request.settings.items()
            if value.WhichOneof("parameter_choice")
        }
        answer = await self._apply(context, "log_settings", settings=changes)
        response = pb.LogSettingsResponse()
        for key, value in answer.items():
            field = (
                "bool_param"
                if isinstance(value, bool)
                else "uint32_param"
                if isinstance(value, int)
                else "string_param"
            )
            response.settings[key].CopyFrom(pb.LogSettingsResponse.SettingValue(**{field: value}))
        return response

    async def TraceSetting(self, request: Any, context: Any) -> pb.TraceSettingResponse:
        changes = {key: list(value.value) for key, value in request.settings.items()}
        answer = await self._apply(context, "trace_settings", model=request.model_name, settings=changes)
        response = pb.TraceSettingResponse()
        for key, values in answer.items():
            response.settings[key].value.extend(values)
        return response

    async def _apply(self, context: Any, op: str, **arguments: Any) -> dict[str, Any]:
        """A setting read or changed on every worker; the fleet answers as its first worker does (all do the same,
        and one worker's refusal is every worker's, as they run the same Triton)."""
        results = await self._ask(context, op, **arguments)
        first = _first(results)
        if any(other != first for other in results.values()):
            logger.warning("workers answer %r differently: %s", op, results)
        return first

    async def RepositoryModelLoad(self, request: Any, context: Any) -> pb.RepositoryModelLoadResponse:
        await self._change(context, "load", request)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> pb.RepositoryModelUnloadResponse:
        await self._change(context, "unload", request)
        return pb.RepositoryModelUnloadResponse()

    async def _change(self, context: Any, op: str, request: Any) -> None:
        if self.repository is None:
            await _abort(context, "UNIMPLEMENTED", "this control service was started without model control")
        try:
            config, dependents = load_arguments(request.parameters)
            if op == "load":
                await self.repository.load(request.model_name, config)
            else:
                await self.repository.unload(request.model_name, dependents)
        except TritonDynamoError as exc:
            await _abort(context, exc.status.name, exc.message)

    async def _ask_all(self, context: Any, op: str, **arguments: Any) -> tuple[dict, dict]:
        try:
            return await self.fleet.ask(op, **arguments)
        except TritonDynamoError as exc:
            await _abort(context, exc.status.name, exc.message)

    async def _ask(self, context: Any, op: str, **arguments: Any) -> dict[str, Any]:
        results, errors = await self._ask_all(context, op, **arguments)
        if not results:
            # Every worker refused, as Triton does for a model it does not know: one worker's status and message.
            error = next(iter(errors.values()))
            await _abort(context, error["status"], error["message"])
        return results

    # Refused with a reason rather than the bare UNIMPLEMENTED of a missing method.
    SystemSharedMemoryStatus = _refuse(SHARED_MEMORY_MESSAGE)
    SystemSharedMemoryRegister = _refuse(SHARED_MEMORY_MESSAGE)
    SystemSharedMemoryUnregister = _refuse(SHARED_MEMORY_MESSAGE)
    CudaSharedMemoryStatus = _refuse(SHARED_MEMORY_MESSAGE)
    CudaSharedMemoryRegister = _refuse(SHARED_MEMORY_MESSAGE)
    CudaSharedMemoryUnregister = _refuse(SHARED_MEMORY_MESSAGE)

    async def _inference(self, request: Any, context: Any) -> NoReturn:
        where = f" at {self.config.inference_url}" if self.config.inference_url else ""
        await _abort(context, "UNIMPLEMENTED", f"inference and model RPCs are served by Dynamo's frontend{where}")

    ModelInfer = ModelStreamInfer = _inference

    # Asked of the workers rather than of the frontend, where the proxy routes them here: the frontend answers from the
    # model card it saw first (after a RepositoryModelLoad that changed a model's config, it kept the old one) and
    # ignores the version, where these answers are Triton's own.
    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        results, _ = await self._ask_all(context, "model_ready", name=request.name, version=request.version)
        return pb.ModelReadyResponse(ready=any(results.values()))

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        results = await self._ask(context, "model_metadata", name=request.name, version=request.version)
        return json_format.ParseDict(_first(results), pb.ModelMetadataResponse(), ignore_unknown_fields=True)

    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        results = await self._ask(context, "model_config", name=request.name, version=request.version)
        config = json_format.ParseDict(_first(results), model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return pb.ModelConfigResponse(config=config)


def _first(results: dict[str, Any]) -> Any:
    """One worker's answer (the same Triton on every worker answers the same), the same one every time."""
    return results[min(results)]


async def _abort(context: Any, status: str, message: str) -> NoReturn:
    code = grpc.StatusCode[status] if status in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


async def serve(config: ControlConfig) -> None:
    """Serve the control RPCs until SIGTERM or SIGINT."""
    from dynamo.common.utils.runtime import create_runtime  # heavy: imported when the service really starts

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runtime, _ = create_runtime(discovery_backend=config.discovery_backend, request_plane=config.request_plane)
    fleet = Fleet(runtime, config.namespace, config.component, timeout_s=config.worker_timeout_s)
    await fleet.start()
    store = model_set_store(config.discovery_backend, config.namespace, config.component)
    repository = RepositoryControl(fleet, store, frontend_url=config.inference_url, timeout_s=config.load_timeout_s)
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(ControlServicer(fleet, config, repository), server)
    readiness = FrontendReadiness(config.inference_url) if config.inference_url else _fleet_readiness(fleet)
    health_pb2_grpc.add_HealthServicer_to_server(ReadinessHealth(readiness), server)
    if server.add_insecure_port(config.address) == 0:
        raise TritonDynamoError(f"cannot listen on {config.address}")
    await server.start()
    logger.info("control RPCs at %s for the workers of %s.%s", config.address, config.namespace, config.component)
    try:
        await stopping.wait()
    finally:
        await server.stop(grace=2)
        if isinstance(readiness, FrontendReadiness):
            await readiness.close()
        runtime.shutdown()


def _fleet_readiness(fleet: Fleet) -> Callable[[], Awaitable[bool]]:
    """Readiness without the frontend's address: some worker is registered (as this service's ServerReady)."""

    async def ready() -> bool:
        return bool(fleet.workers())

    return ready
