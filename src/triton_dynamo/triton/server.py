# SPDX-License-Identifier: Apache-2.0
"""An in-process Triton server: options, start and stop, health, the model index, loading, metrics.

Example:
    >>> server = Server(Options(model_repository="model_repo")).start(wait_until_ready=True)  # doctest: +SKIP
    >>> sorted(name for name, _ in server.models(exclude_not_ready=True))                      # doctest: +SKIP
    ['add_sub', 'classifier', 'identity', ...]
    >>> server.stop()                                                                          # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from ctypes import byref, c_bool, c_char_p, c_void_p
from dataclasses import dataclass, field
from pathlib import Path

from . import _capi as C
from . import infer as _infer
from .errors import TritonError
from .locate import TritonInstall, find_installation, has_nvidia_gpu, load_library, prepare_child_environment
from .logs import LogSettings, apply_log_settings, log_pipe_path
from .model import Model

logger = logging.getLogger(__name__)

_CONTROL_MODES = {"none": C.MODEL_CONTROL_NONE, "poll": C.MODEL_CONTROL_POLL, "explicit": C.MODEL_CONTROL_EXPLICIT}


@dataclass(frozen=True, kw_only=True)
class Options:
    """How to start Triton; every field has a default but ``model_repository``.

    Attributes:
        model_repository: one repository path, or several.
        library: path of libtritonserver.so; None finds one (see :mod:`.locate`).
        backend_directory: the backends folder; None takes the found installation's.
        model_control_mode: ``explicit`` (load and unload on request), ``poll`` or ``none`` (load all, fixed).
        startup_models: models loaded at start in explicit mode; ``*`` is every model of the repository.
        strict_model_config: require complete config.pbtxt files (False lets backends fill in what is missing).
        strict_readiness: the server is ready only when every model is.
        exit_on_error: refuse to start when a model fails to load; False serves the others and reports the failure.
        exit_timeout_s: how long stop() waits for requests in flight before unloading anyway.
        log_verbose: Triton's verbose log level (0 is off).
        log_info, log_warn, log_error: which of Triton's log levels are on.
        log_file: a file for Triton's log; None routes Triton's log lines into Python logging.
        metrics: collect Triton's metrics (``nv_*``), read with :meth:`Server.metrics`.
        gpu_metrics: the GPU gauges (DCGM); None turns them on where an NVIDIA driver is present.
        cpu_metrics: the CPU and memory gauges.
        metrics_interval_ms: how often GPU and CPU gauges are refreshed.
        metrics_config: Triton's ``--metrics-config`` settings, e.g. ``{"histogram_latencies": "true"}``.
        backend_config: backend name -> {setting: value}, Triton's ``--backend-config``.
        pinned_memory_pool_size_bytes: Triton's pinned host memory pool; None keeps Triton's default (256 MiB)
            where an NVIDIA driver is present and makes it 0 elsewhere.
        cuda_memory_pool_size_bytes: GPU 0's CUDA memory pool; None keeps Triton's default.
        min_supported_compute_capability: the lowest CUDA compute capability Triton will use.
        model_load_thread_count: threads that load models in parallel.
        model_load_retry_count: how many times Triton tries again to load a model that failed to load.
        server_id: the id Triton reports in its metadata.
    """

    model_repository: str | Path | Sequence[str | Path]
    library: str | Path | None = None
    backend_directory: str | Path | None = None
    model_control_mode: str = "explicit"
    startup_models: Sequence[str] = ("*",)
    strict_model_config: bool = False
    strict_readiness: bool = True
    exit_on_error: bool = False
    exit_timeout_s: int = 30
    log_verbose: int = 0
    log_info: bool = True
    log_warn: bool = True
    log_error: bool = True
    log_file: str | None = None
    metrics: bool = True
    gpu_metrics: bool | None = None
    cpu_metrics: bool = True
    metrics_interval_ms: int = 2000
    metrics_config: Mapping[str, str] = field(default_factory=dict)
    backend_config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    pinned_memory_pool_size_bytes: int | None = None
    cuda_memory_pool_size_bytes: int | None = None
    min_supported_compute_capability: float | None = None
    model_load_thread_count: int | None = None
    model_load_retry_count: int = 0
    server_id: str = "triton-dynamo"

    def __post_init__(self) -> None:
        if self.model_control_mode not in _CONTROL_MODES:
            raise TritonError(
                f"model_control_mode must be one of {sorted(_CONTROL_MODES)}, not {self.model_control_mode!r}",
                code=TritonError.INVALID_ARG,
            )
        for path in self.repositories:
            if "://" not in path and not Path(path).is_dir():
                raise TritonError(f"model repository {path!r} is not a directory", code=TritonError.INVALID_ARG)
        if self.exit_timeout_s < 0 or self.log_verbose < 0 or self.model_load_retry_count < 0:
            raise TritonError(
                "exit_timeout_s, log_verbose and model_load_retry_count must not be negative",
                code=TritonError.INVALID_ARG,
            )

    @property
    def repositories(self) -> list[str]:
        repos = self.model_repository
        if isinstance(repos, (str, Path)):
            repos = [repos]
        return [str(Path(r).resolve()) if "://" not in str(r) else str(r) for r in repos]


_running: weakref.WeakSet[Server] = weakref.WeakSet()


class Server:
    """Triton running inside this process. Thread-safe; inference is driven from asyncio (:meth:`Model.async_infer`)."""

    def __init__(self, options: Options | None = None, **kwargs) -> None:
        self.options = options if options is not None else Options(**kwargs)
        self.install: TritonInstall = find_installation(self.options.library, self.options.backend_directory)
        self._api = C.CApi(load_library(self.install))
        _infer.install(self._api)
        self._handle: int | None = None
        self._lock = threading.Lock()
        o = self.options
        self._log = LogSettings(
            log_info=o.log_info, log_warning=o.log_warn, log_error=o.log_error, log_verbose_level=o.log_verbose
        )

    # lifecycle -----------------------------------------------------------------------------------------------------

    def start(self, *, wait_until_ready: bool = False, timeout_s: float = 300.0) -> Server:
        """Start Triton and load the startup models; blocks while they load (seconds: call it off the event loop).

        With ``wait_until_ready``, also waits until Triton reports ready or raises after ``timeout_s``.
        """
        with self._lock:
            if self._handle is not None:
                return self
            if self.install.dependency_directory is not None:
                prepare_child_environment(self.install)
            api, opts = self._api, c_void_p()
            api.check(api.ServerOptionsNew(byref(opts)))
            try:
                self._apply_options(opts)
                handle = c_void_p()
                api.check(api.ServerNew(byref(handle), opts))
            finally:
                api.ServerOptionsDelete(opts)
            self._handle = handle.value
            _running.add(self)
        logger.info(
            "Triton started (C API %d.%d, %s library %s)",
            *self._api.api_version,
            self.install.source,
            self.install.library,
        )
        for entry in self.model_index():
            if entry.get("state") not in ("READY", None):
                logger.error(
                    "model %r version %s did not load: %s",
                    entry["name"],
                    entry.get("version", "?"),
                    entry.get("reason") or entry.get("state"),
                )
        if wait_until_ready:
            deadline = time.monotonic() + timeout_s
            while not self.ready():
                if time.monotonic() > deadline:
                    raise TritonError(f"Triton not ready after {timeout_s:.0f} s", code=TritonError.UNAVAILABLE)
                time.sleep(0.05)
        return self

    def _apply_options(self, opts: c_void_p) -> None:
        o, api, check = self.options, self._api, self._api.check
        for path in o.repositories:
            check(api.ServerOptionsSetModelRepositoryPath(opts, path.encode()))
        check(api.ServerOptionsSetModelControlMode(opts, _CONTROL_MODES[o.model_control_mode]))
        if o.model_control_mode == "explicit":
            for name in o.startup_models:
                check(api.ServerOptionsSetStartupModel(opts, name.encode()))
        check(api.ServerOptionsSetBackendDirectory(opts, str(self.install.backend_directory).encode()))
        if self.install.repoagent_directory is not None:
            check(api.ServerOptionsSetRepoAgentDirectory(opts, str(self.install.repoagent_directory).encode()))
        check(api.ServerOptionsSetServerId(opts, o.server_id.encode()))
        check(api.ServerOptionsSetStrictModelConfig(opts, o.strict_model_config))
        check(api.ServerOptionsSetStrictReadiness(opts, o.strict_readiness))
        check(api.ServerOptionsSetExitOnError(opts, o.exit_on_error))
        check(api.ServerOptionsSetExitTimeout(opts, o.exit_timeout_s))
        check(api.ServerOptionsSetLogFile(opts, (o.log_file or log_pipe_path()).encode()))
        check(api.ServerOptionsSetLogInfo(opts, o.log_info))
        check(api.ServerOptionsSetLogWarn(opts, o.log_warn))
        check(api.ServerOptionsSetLogError(opts, o.log_error))
        check(api.ServerOptionsSetLogVerbose(opts, o.log_verbose))
        check(api.ServerOptionsSetMetrics(opts, o.metrics))
        gpu = has_nvidia_gpu()
        check(api.ServerOptionsSetGpuMetrics(opts, o.metrics and (gpu if o.gpu_metrics is None else o.gpu_metrics)))
        check(api.ServerOptionsSetCpuMetrics(opts, o.metrics and o.cpu_metrics))
        check(api.ServerOptionsSetMetricsInterval(opts, o.metrics_interval_ms))
        for setting, value in o.metrics_config.items():
            check(api.ServerOptionsSetMetricsConfig(opts, b"", setting.encode(), str(value).encode()))
        for backend, settings in o.backend_config.items():
            for setting, value in settings.items():
                check(api.ServerOptionsSetBackendConfig(opts, backend.encode(), setting.encode(), str(value).encode()))
        pinned = (
            o.pinned_memory_pool_size_bytes if o.pinned_memory_pool_size_bytes is not None else (None if gpu else 0)
        )
        if pinned is not None:
            check(api.ServerOptionsSetPinnedMemoryPoolByteSize(opts, pinned))
        if o.cuda_memory_pool_size_bytes is not None:
            check(api.ServerOptionsSetCudaMemoryPoolByteSize(opts, 0, o.cuda_memory_pool_size_bytes))
        if o.min_supported_compute_capability is not None:
            check(api.ServerOptionsSetMinSupportedComputeCapability(opts, o.min_supported_compute_capability))
        if o.model_load_thread_count is not None:
            check(api.ServerOptionsSetModelLoadThreadCount(opts, o.model_load_thread_count))
        # Always set: TRITONSERVER_ServerOptionsNew (Triton 2.51) leaves this count uninitialised, so a model that
        # fails to load was retried a garbage number of times, and start() or load() could hang for hours.
        check(api.ServerOptionsSetModelLoadRetryCount(opts, o.model_load_retry_count))

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop Triton: new requests are refused, requests in flight get up to ``timeout_s`` (default: the
        ``exit_timeout_s`` option) to finish, then every model is unloaded. Blocks; call it off the event loop.
        Safe to call twice and from any thread."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is None:
            return
        _running.discard(self)
        api = self._api
        if timeout_s is not None:
            api.check(api.ServerSetExitTimeout(handle, max(0, round(timeout_s))))
        err = api.ServerStop(handle)  # ctypes drops the GIL here, so Triton's callbacks keep running
        if err:
            # The exit timeout expired before every model was unloaded: requests still in flight (Triton then never
            # unloads the models) or a model slow to unload. TRITONSERVER_ServerDelete would free the server under
            # the model instances still running, and the process later aborts with a corrupted heap. Triton's own
            # main() exits without deleting the server in this case; so do we, leaving it allocated for good.
            logger.warning(
                "Triton stop: %s Some models are still loaded; the server is left allocated", api.error(err).message
            )
            return
        err = api.ServerDelete(handle)
        if err:
            logger.warning("Triton delete: %s", api.error(err).message)
        logger.info("Triton stopped")

    def __enter__(self) -> Server:
        return self.start(wait_until_ready=True)

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise TritonError("the Triton server is not running", code=TritonError.UNAVAILABLE)
        return self._handle

    # health and metadata -------------------------------------------------------------------------------------------

    def live(self) -> bool:
        return self._flag(self._api.ServerIsLive)

    def ready(self) -> bool:
        return self._flag(self._api.ServerIsReady)

    def _flag(self, fn) -> bool:
        if self._handle is None:
            return False
        value = c_bool()
        self._api.check(fn(self.handle, byref(value)))
        return value.value

    def metadata(self) -> dict:
        msg = c_void_p()
        self._api.check(self._api.ServerMetadata(self.handle, byref(msg)))
        return json.loads(self._api.message_json(msg))

    def log_settings(self) -> dict:
        """Triton's logger, as Triton's LogSettings RPC answers (``log_file`` empty: its lines reach Python logging)."""
        return self._log.as_dict()

    def update_log_settings(self, changes: dict) -> dict:
        """Change Triton's logger now (Triton's names and types: ``log_info``, ``log_verbose_level``, ...); refused
        with Triton's status as Triton refuses it. Returns the settings now in force.

        Example:
            >>> server.update_log_settings({"log_verbose_level": 1})["log_verbose_level"]  # doctest: +SKIP
            1
        """
        with self._lock:
            settings = self._log.updated(changes)
            apply_log_settings(self._api, settings)
            self._log = settings
        return settings.as_dict()

    def metrics(self) -> str:
        """Triton's metrics in Prometheus text format (empty when the ``metrics`` option is off)."""
        api, metrics = self._api, c_void_p()
        api.check(api.ServerMetrics(self.handle, byref(metrics)))
        try:
            base, size = c_void_p(), ctypes.c_size_t()
            api.check(api.MetricsFormatted(metrics, C.METRIC_PROMETHEUS, byref(base), byref(size)))
            return ctypes.string_at(base, size.value).decode()
        finally:
            api.MetricsDelete(metrics)

    # models --------------------------------------------------------------------------------------------------------

    def model_index(self, *, ready_only: bool = False) -> list[dict]:
        """Every model of the repositories: dicts with ``name``, ``version``, ``state`` and ``reason``."""
        msg = c_void_p()
        self._api.check(self._api.ServerModelIndex(self.handle, C.INDEX_FLAG_READY if ready_only else 0, byref(msg)))
        return json.loads(self._api.message_json(msg))

    def models(self, *, exclude_not_ready: bool = False) -> dict[tuple[str, int], Model]:
        """(name, version) -> :class:`Model`, as in NVIDIA's in-process API."""
        found = {}
        for entry in self.model_index(ready_only=exclude_not_ready):
            version = int(entry["version"]) if entry.get("version") else -1
            found[(entry["name"], version)] = Model(self, entry["name"], version)
        return found

    def statistics(self, name: str = "", version: int = -1) -> dict:
        """Triton's cumulative statistics (``model_stats``): of every model with no name, of every version of the
        named one with -1."""
        msg = c_void_p()
        self._api.check(self._api.ServerModelStatistics(self.handle, name.encode(), version, byref(msg)))
        return json.loads(self._api.message_json(msg))

    def model(self, name: str, version: int = -1) -> Model:
        """A handle on model ``name`` (its latest version with -1); it need not be loaded yet."""
        return Model(self, name, version)

    def load(self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None) -> Model:
        """Load (or reload) a model; explicit model control mode only. Blocks while it loads.

        ``config`` replaces the model's ``config.pbtxt`` (JSON of ``inference.ModelConfig``, as Triton's
        RepositoryModelLoad takes it); ``files`` maps ``"file:<version>/<name>"`` to a file's content, which then
        stands in for the model's folder (Triton requires ``config`` with it).

        Example:
            >>> server.load("identity", config='{"max_batch_size": 0}')  # doctest: +SKIP
            Model('identity', version=-1)
        """
        api = self._api
        if config is None and not files:
            api.check(api.ServerLoadModel(self.handle, name.encode()))
            return Model(self, name)
        parameters = []
        try:
            if config is not None:
                parameters.append(api.ParameterNew(b"config", C.PARAMETER_STRING, c_char_p(config.encode())))
            for key, content in (files or {}).items():
                parameters.append(api.ParameterBytesNew(key.encode(), content, len(content)))
            if not all(parameters):
                raise TritonError(f"cannot build the load parameters of model {name!r}", code=TritonError.INTERNAL)
            array = (c_void_p * len(parameters))(*parameters)
            api.check(api.ServerLoadModelWithParameters(self.handle, name.encode(), array, len(parameters)))
        finally:
            for parameter in parameters:
                if parameter:
                    api.ParameterDelete(parameter)
        return Model(self, name)

    def unload(
        self, name: str, *, wait_until_unloaded: bool = True, timeout_s: float = 60.0, unload_dependents: bool = False
    ) -> None:
        """Unload a model (with ``unload_dependents``, also the models of an ensemble it belongs to); requests in
        flight finish first. Explicit model control mode only.

        Blocks: call it off the event loop (``asyncio.to_thread``). Triton holds a model until its requests are
        deleted, which the binding does on the event loop that ran them; waiting on that loop's own thread can then
        never see the model unloaded.
        """
        unload = self._api.ServerUnloadModelAndDependents if unload_dependents else self._api.ServerUnloadModel
        self._api.check(unload(self.handle, name.encode()))
        deadline = time.monotonic() + timeout_s
        while wait_until_unloaded and any(
            e["name"] == name and e.get("state") in ("READY", "UNLOADING") for e in self.model_index()
        ):
            if time.monotonic() > deadline:
                raise TritonError(f"model {name!r} not unloaded after {timeout_s:.0f} s", code=TritonError.UNAVAILABLE)
            time.sleep(0.02)


@atexit.register
def _stop_running_servers() -> None:
    # Triton's threads call into Python; they must be done before the interpreter goes away.
    for server in list(_running):
        try:
            server.stop(timeout_s=5)
        except Exception:
            logger.exception("stopping Triton at exit")
