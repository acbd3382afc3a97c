# SPDX-License-Identifier: Apache-2.0
"""The worker's control endpoint: what the control service (:mod:`triton_dynamo.control`) asks every worker about its
Triton, answered by that Triton. One request, one response: ``{"op": ..., <arguments>}`` in, ``{"result": ...}`` or
``{"error": {"status": ..., "message": ...}}`` out, so that Triton's status travels as data, not as an exception
text that Dynamo reports as INTERNAL. The endpoint's name is in :mod:`triton_dynamo.endpoints`.

Example:
    >>> import asyncio
    >>> asyncio.run(ControlHandler(server=None).answer({"op": "reboot"}))["error"]["status"]
    'INVALID_ARGUMENT'
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from ..errors import InvalidInput, TritonDynamoError
from ..triton import Server
from .trace_settings import TracePolicy, TraceSettings

logger = logging.getLogger(__name__)


class ModelControl(Protocol):
    """What loads and unloads models in a worker: Triton, then Dynamo's registration (the worker)."""

    registered: set[str]  # the models the frontend routes to this worker

    async def load_model(self, name: str, config: str | None = None) -> dict[str, Any]: ...

    async def unload_model(self, name: str, unload_dependents: bool = False) -> dict[str, Any]: ...


class ControlHandler:
    """Answers control requests from one worker's Triton; loads and unloads through ``models`` when given."""

    def __init__(self, server: Server, models: ModelControl | None = None, tracing: TracePolicy | None = None) -> None:
        self.server = server
        self.tracing = tracing or TracePolicy(_NO_TRACES)
        self._ops: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "server_metadata": lambda _: server.metadata(),
            "statistics": lambda r: server.statistics(str(r.get("name") or ""), _version(r.get("version"))),
            "repository_index": lambda r: server.model_index(ready_only=bool(r.get("ready"))),
            "log_settings": self._log_settings,
            "trace_settings": self._trace_settings,
            "model_metadata": lambda r: server.model(_name(r), _version(r.get("version"))).metadata(),
            "model_config": lambda r: server.model(_name(r), _version(r.get("version"))).config(),
            "model_ready": self._model_ready,
        }
        self.models = models
        if models is not None:
            self._ops["load"] = lambda r: models.load_model(_name(r), _config(r))
            self._ops["unload"] = lambda r: models.unload_model(_name(r), bool(r.get("unload_dependents")))

    def _model_ready(self, request: Mapping[str, Any]) -> bool:
        """Ready here: Triton serves that version, and (in a worker) the frontend routes the model here."""
        name = _name(request)
        routed = self.models is None or name in self.models.registered
        return routed and self.server.model(name, _version(request.get("version"))).ready()

    def _log_settings(self, request: Mapping[str, Any]) -> dict[str, Any]:
        changes = request.get("settings") or {}
        if not isinstance(changes, dict):
            raise InvalidInput("log settings must be a mapping of setting names to values")
        return self.server.update_log_settings(changes) if changes else self.server.log_settings()

    def _trace_settings(self, request: Mapping[str, Any]) -> dict[str, Any]:
        model = str(request.get("model") or "")
        if model and model not in {e["name"] for e in self.server.model_index()}:
            raise InvalidInput(f"Request for unknown model : {model}")
        changes = request.get("settings") or {}
        return self.tracing.update(model, changes) if changes else self.tracing.get(model)

    async def generate(self, request: Mapping[str, Any], context: Any = None) -> AsyncIterator[dict[str, Any]]:
        """Dynamo's handler: one control request in, its one answer out."""
        yield await self.answer(request)

    async def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            method = self._ops.get(op)
            if method is None:
                raise InvalidInput(f"unknown control operation {op!r}; known: {', '.join(sorted(self._ops))}")
            result = method(request)
            if inspect.isawaitable(result):
                result = await result
            return {"result": result}
        except TritonDynamoError as exc:
            logger.info("control %r refused: %s", op, exc)
            return {"error": {"status": exc.status.name, "message": exc.message}}
        except Exception as exc:  # a defect here: the control service names it rather than "no answer"
            logger.exception("control %r failed", op)
            return {"error": {"status": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}}


_NO_TRACES = TraceSettings(trace_level=("OFF",))


def _name(request: Mapping[str, Any]) -> str:
    name = request.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput("a model name is required")
    return name


def _config(request: Mapping[str, Any]) -> str | None:
    config = request.get("config")
    if config is not None and not isinstance(config, str):
        raise InvalidInput("a config override must be the model configuration's JSON text")
    return config


def _version(value: Any) -> int:
    """A KServe version string ("" for all, or the number) as Triton's int64 (-1 for all)."""
    if value in (None, ""):
        return -1
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"model version {value!r} is not a number") from None
