# SPDX-License-Identifier: Apache-2.0
"""What the Compose stack promises, read from the configurations Compose makes of the files (`docker compose config`)
and from the files they mount: pinned images, healthchecks, a scalable worker, mounts that exist, loopback-only
ports, no root and no secret where avoidable, and ports and addresses that agree with the code and Prometheus."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from triton_dynamo.loadgen.config import LoadConfig
from triton_dynamo.stack import launcher
from triton_dynamo.stack.config import StackConfig
from triton_dynamo.stack.proxy import CONTROL_PATHS, SETTINGS
from triton_dynamo.worker.config import MAX_SYSTEM_PORT, WorkerConfig

from .tools import CORE, CPU, MULTIGPU, OBSERVABILITY, REPO_ROOT, read_dotenv

GPU_STACK = (CORE, OBSERVABILITY)
ENV = read_dotenv()
PROMETHEUS_YML = REPO_ROOT / "services" / "prometheus" / "prometheus.yml"
# Services that need no port of their own on the host; everything else publishes nothing.
PUBLISHED = {"frontend", "tls-proxy", "prometheus", "grafana", "locust"}
# Images that run as root and cannot be told otherwise (their data folders are root's, no shell to change that):
# they run without capabilities instead. dcgm-exporter reads the GPUs through DCGM.
ROOT_ALLOWED = {"etcd", "nats", "dcgm-exporter"}
SECRETS_DIR = REPO_ROOT / "secrets"


def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


def argument(argv: list[str], flag: str) -> str:
    """The value of ``flag`` in ``argv`` (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"$', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert match, "no version in pyproject.toml"
    return match.group(1)


# ------------------------------------------------------------------------------------------------ images


def test_every_image_is_pinned(configs) -> None:
    for files, config in configs.items():
        for name, service in services(config).items():
            image = service.get("image")
            assert image, f"{files}: {name} has no image name"
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag, f"{files}: {name}: image {image!r} has no tag"
            assert tag != "latest" and "$" not in image, f"{files}: {name}: image {image!r} is not pinned"
            if "build" in service:
                assert image.startswith("triton-dynamo/"), f"{name}: built images are named triton-dynamo/..."
                assert tag == pyproject_version(), f"{name}: tag {tag} is not the package version"


def test_dotenv_pins_every_image_variable() -> None:
    for key, value in ENV.items():
        if key.endswith("_IMAGE"):
            assert ":" in value and not value.endswith(":latest"), f"{key}={value}"
    assert ENV["TRITON_DYNAMO_VERSION"] == pyproject_version()
    # the Triton image whose Triton is the wheel's (2.51): 24.10
    assert ENV["TRITON_IMAGE"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert ENV["PYTHON_IMAGE"].startswith("python:3.11.") and ENV["PYTHON_IMAGE"].endswith("-slim-bookworm")


@pytest.mark.parametrize("dockerfile", ["services/frontend/Dockerfile", "services/worker/Dockerfile"])
def test_dockerfile_defaults_match_dotenv(dockerfile: str) -> None:
    text = (REPO_ROOT / dockerfile).read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    assert defaults, dockerfile
    for key, value in defaults.items():
        assert ENV[key] == value, f"{dockerfile}: ARG {key}={value}, .env has {ENV[key]}"


@pytest.mark.parametrize("dockerfile", ["services/frontend/Dockerfile", "services/worker/Dockerfile"])
def test_dockerfile_installs_exactly_the_lock(dockerfile: str) -> None:
    """The lock's override-dependencies hold only if nothing is resolved again: export the lock, install --no-deps."""
    text = (REPO_ROOT / dockerfile).read_text()
    exports = re.findall(r"uv export --frozen --no-dev --no-hashes --no-emit-project", text)
    installs = re.findall(r"uv pip install --python /opt/venv/bin/python --no-deps -r /dist/requirements.txt", text)
    assert exports and len(exports) == len(installs), dockerfile
    assert "pip install ." not in text and "uv sync" not in text


# ------------------------------------------------------------------------------------------------ health, restarts


def test_every_waited_on_service_has_a_healthcheck(configs) -> None:
    for files, config in configs.items():
        for name, service in services(config).items():
            for dependency, rule in (service.get("depends_on") or {}).items():
                assert dependency in services(config), f"{files}: {name} depends on unknown {dependency}"
                if rule.get("condition") == "service_healthy":
                    check = services(config)[dependency].get("healthcheck") or {}
                    assert check.get("test") and not check.get("disable"), f"{files}: {dependency} (for {name})"


def test_frontend_and_worker_wait_for_healthy_etcd_and_nats(configs) -> None:
    for config in configs.values():
        for name in ("frontend", "worker"):
            depends = services(config)[name]["depends_on"]
            for dependency in ("etcd", "nats"):
                assert depends[dependency]["condition"] == "service_healthy", (name, dependency)


def test_long_running_services_restart(configs) -> None:
    for files, config in configs.items():
        for name, service in services(config).items():
            assert service.get("restart") in ("always", "unless-stopped"), f"{files}: {name}: {service.get('restart')}"


# ------------------------------------------------------------------------------------------------ the worker


def workers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run `triton-dynamo worker` (worker, and worker-gpuN of compose.multigpu.yaml)."""
    return {n: s for n, s in services(config).items() if (s.get("command") or [])[:2] == ["triton-dynamo", "worker"]}


def test_worker_scales(configs) -> None:
    for files, config in configs.items():
        assert "worker" in workers(config), files
        for name, worker in workers(config).items():
            assert "container_name" not in worker, (files, name)
            assert not worker.get("ports"), f"{files}: {name}: a fixed host port would stop --scale {name}=N"
            assert "hostname" not in worker, (files, name)
            # Prometheus finds every replica by the name `worker`
            aliases = [a for n in (worker.get("networks") or {}).values() for a in (n or {}).get("aliases") or []]
            assert name == "worker" or "worker" in aliases, (files, name)


def test_worker_healthcheck_probes_its_system_port(configs) -> None:
    for files, config in configs.items():
        for name, worker in workers(config).items():
            system_port = argument(worker["command"], "--system-port")
            test = " ".join(worker["healthcheck"]["test"])
            assert f"http://127.0.0.1:{system_port}/health" in test, (files, name)


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_worker_stop_grace_period_outlasts_its_drain(configs) -> None:
    for files, config in configs.items():
        for name, worker in workers(config).items():
            drain = float(argument(worker["command"], "--grace-period-s"))
            # the drain, then Triton's stop (up to 5 s) and Dynamo's own shutdown
            assert _seconds(worker["stop_grace_period"]) >= drain + 10, (files, name)


def test_a_dead_worker_stays_out_of_routing_until_its_lease_expires(configs) -> None:
    """Dynamo's frontend lets a worker it could not reach back into routing at its next reconcile, which falls at a
    random moment within the hold: the dead worker gets requests again before its registration expires with a chance
    of about lease / hold (.env). At most 1 kill in 100."""
    for files, config in configs.items():
        frontend = services(config)["frontend"]["environment"]
        hold_s = float(frontend["DYN_RUNTIME_INHIBITED_DURATION_SECS"])
        for name, worker in workers(config).items():
            lease_s = float(worker["environment"]["ETCD_LEASE_TTL"])
            assert lease_s / hold_s <= 0.01, (files, name, lease_s, hold_s)


def _devices(worker: dict[str, Any]) -> list[dict[str, Any]] | None:
    return (((worker.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")


def test_worker_reserves_a_gpu_except_on_cpu(configs) -> None:
    for files, config in configs.items():
        for name, worker in workers(config).items():
            devices = _devices(worker)
            if CPU in files:
                assert not devices, files
                assert worker["build"]["target"] == "cpu" and worker["image"].startswith("triton-dynamo/worker-cpu:")
            else:
                assert len(devices) == 1 and devices[0]["driver"] == "nvidia", (files, name, devices)
                assert "gpu" in devices[0]["capabilities"], (files, name)
                assert worker["build"]["target"] == "gpu", (files, name)


def test_multigpu_pins_one_gpu_per_worker_service(configs) -> None:
    pinned = {name: _devices(w)[0].get("device_ids") for name, w in workers(configs[(CORE, MULTIGPU)]).items()}
    assert pinned == {"worker": ["0"], "worker-gpu1": ["1"]}


def test_worker_serves_the_repository_read_only(configs) -> None:
    worker = services(configs[(CORE,)])["worker"]
    repository = argument(worker["command"], "--model-repository")
    mount = next(v for v in worker["volumes"] if v["target"] == repository)
    assert Path(mount["source"]) == REPO_ROOT / "model_repo" and mount["read_only"]


# ------------------------------------------------------------------------------------------------ mounts and secrets


def test_every_mounted_path_exists(configs) -> None:
    for files, config in configs.items():
        for name, service in services(config).items():
            for volume in service.get("volumes") or []:
                if volume["type"] != "bind":
                    continue
                source = Path(volume["source"])
                assert source.is_relative_to(REPO_ROOT), f"{name}: {source} is outside the repository"
                assert source.exists(), f"{files}: {name} mounts {source.relative_to(REPO_ROOT)}, which is missing"
            for volume in service.get("volumes") or []:
                if volume["type"] == "volume":
                    assert volume["source"] in config.get("volumes", {}), f"{name}: volume {volume['source']}"


def test_secrets_come_from_the_git_ignored_folder(configs) -> None:
    files = {Path(s["file"]) for config in configs.values() for s in (config.get("secrets") or {}).values()}
    assert files, "no secret"
    for path in files:
        assert path.is_relative_to(SECRETS_DIR), path
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", str(path.relative_to(REPO_ROOT))], cwd=REPO_ROOT
        )
        assert ignored.returncode == 0, f"{path.relative_to(REPO_ROOT)} is not git-ignored"


def test_grafana_has_no_default_password(configs) -> None:
    grafana = services(configs[GPU_STACK])["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    target = env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert any(s["target"] == target for s in grafana["secrets"])
    for name in ENV:
        assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE", name), f".env holds {name}"


def test_no_secret_or_checkout_leftover_reaches_an_image() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert patterns[0] == "*", "the build context is an allow-list"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    assert set(allowed) == {"pyproject.toml", "uv.lock", "README.md", "hatch_build.py", "src"}
    for dockerfile in ("services/frontend/Dockerfile", "services/worker/Dockerfile"):
        text = (REPO_ROOT / dockerfile).read_text()
        assert not re.search(r"^(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|KEY)", text, re.MULTILINE | re.IGNORECASE)
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE)
        for sources in copied:
            for source in sources.split():
                assert source in allowed, f"{dockerfile}: COPY {source}"


# ------------------------------------------------------------------------------------------------ users, ports


def _final_user(dockerfile: str, target: str) -> str | None:
    stages = re.split(r"^FROM ", (REPO_ROOT / dockerfile).read_text(), flags=re.MULTILINE)
    stage = next(s for s in stages if re.match(rf"\S+ AS {target}\n", s))
    users = re.findall(r"^USER (\S+)", stage, re.MULTILINE)
    return users[-1] if users else None


def test_containers_do_not_run_as_root(configs) -> None:
    for files, config in configs.items():
        for name, service in services(config).items():
            if name in ROOT_ALLOWED:
                continue
            user = service.get("user")
            if user is None and "build" in service:
                build = service["build"]
                user = _final_user(str(Path(build["dockerfile"])), build["target"])
            assert user and user.split(":")[0] not in ("0", "root"), f"{files}: {name} runs as root"
    for name in ("etcd", "nats"):
        service = services(configs[(CORE,)])[name]
        assert service["cap_drop"] == ["ALL"] and service["read_only"], name


def test_only_the_ports_a_user_needs_are_published_on_loopback(configs) -> None:
    assert ENV["BIND_ADDRESS"] == "127.0.0.1" and ENV["TLS_BIND_ADDRESS"] == "127.0.0.1"
    for files, config in configs.items():
        for name, service in services(config).items():
            ports = service.get("ports") or []
            if name not in PUBLISHED:
                assert not ports, f"{files}: {name} publishes {ports}"
            for port in ports:
                assert port.get("host_ip") == "127.0.0.1", f"{files}: {name}: {port}"
                assert port.get("published"), f"{files}: {name}: {port} has no fixed host port"


# ------------------------------------------------------------------------------------------------ agreement


def _listening_ports(config: dict[str, Any]) -> dict[str, set[int]]:
    """Every service -> the ports it listens on in its container, read from its command and its mounted config."""
    s = services(config)
    etcd = yaml.safe_load((REPO_ROOT / "services/etcd/etcd.yaml").read_text())
    nats = (REPO_ROOT / "services/nats/nats-server.conf").read_text()
    otel = yaml.safe_load((REPO_ROOT / "services/otel-collector/config.yaml").read_text())
    tempo = yaml.safe_load((REPO_ROOT / "services/tempo/tempo.yaml").read_text())
    nghttpx = (REPO_ROOT / "services/nghttpx/nghttpx.conf").read_text()
    reader = otel["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    ports = {
        "frontend": {int(argument(s["frontend"]["command"], f)) for f in ("--http-port", "--grpc-metrics-port")},
        "control": {int(argument(s["control"]["command"], "--port"))},
        "worker": {int(argument(s["worker"]["command"], f)) for f in ("--system-port", "--metrics-port")},
        "etcd": {urlsplit(u).port for u in etcd["listen-client-urls"].split(",")},
        "nats": {int(p) for p in re.findall(r"^(?:listen|http):\s*\S+:(\d+)", nats, re.MULTILINE)},
        "tls-proxy": {int(p) for p in re.findall(r"^frontend=[^,]+,(\d+)", nghttpx, re.MULTILINE)},
        "prometheus": {port_of(argument(s["prometheus"]["command"], "--web.listen-address"))},
        "grafana": {int(s["grafana"]["environment"]["GF_SERVER_HTTP_PORT"])},
        "nats-exporter": {int(argument(s["nats-exporter"]["command"], "-port"))},
        "otel-collector": {
            reader["port"],
            *(port_of(p["endpoint"]) for p in otel["receivers"]["otlp"]["protocols"].values()),
        },
        "tempo": {
            tempo["server"]["http_listen_port"],
            port_of(tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
        },
        "locust": {int(argument(s["locust"]["command"], f)) for f in ("--web-port", "--client-metrics-port")},
        "locust-worker": {int(argument(s["locust-worker"]["command"], "--worker-client-metrics-port"))},
        "dcgm-exporter": {port_of(s["dcgm-exporter"]["environment"]["DCGM_EXPORTER_LISTEN"])},
    }
    for name, service in s.items():
        for network in (service.get("networks") or {}).values():
            for alias in (network or {}).get("aliases") or []:
                ports[alias] = ports[name]
    return ports


def test_published_ports_are_the_ones_the_services_listen_on(configs) -> None:
    config = configs[GPU_STACK]
    listening = _listening_ports(config)
    for name, service in services(config).items():
        for port in service.get("ports") or []:
            assert port["target"] in listening[name], f"{name} publishes {port['target']}, listens on {listening[name]}"


def test_dotenv_agrees_with_the_code_defaults(configs) -> None:
    repository = ["--model-repository", str(REPO_ROOT / "model_repo")]
    stack = StackConfig.from_args(repository, env={})
    worker = WorkerConfig.from_args(repository, env={})
    s = services(configs[GPU_STACK])
    frontend, worker_command = s["frontend"]["command"], s["worker"]["command"]
    # the host sees the one port and the frontend's own on the ports of `triton-dynamo up`; the frontend's container
    # listens where the proxy of `up` does
    assert int(ENV["GRPC_PORT"]) == stack.grpc_port == int(argument(frontend, "--http-port"))
    assert int(ENV["FRONTEND_GRPC_PORT"]) == stack.frontend_port
    assert int(argument(s["control"]["command"], "--port")) == stack.control_port
    assert int(ENV["FRONTEND_METRICS_PORT"]) == stack.metrics_port == int(argument(frontend, "--grpc-metrics-port"))
    assert ENV["FRONTEND_GRPC_ADDRESS"] == f"frontend:{stack.grpc_port}"
    assert ENV["ROUTER_MODE"] == stack.router_mode
    assert ENV["FRONTEND_RUNTIME_THREADS"] == launcher.FRONTEND_RUNTIME_THREADS
    assert s["frontend"]["environment"]["DYN_RUNTIME_NUM_WORKER_THREADS"] == launcher.FRONTEND_RUNTIME_THREADS
    assert ENV["DYN_LOG"] == launcher.QUIET_REQUEST_LOGS
    assert s["frontend"]["environment"]["DYN_LOG"] == launcher.QUIET_REQUEST_LOGS
    assert s["worker"]["environment"]["DYN_LOG"] == launcher.QUIET_REQUEST_LOGS
    # the worker's ports: the first worker's of `triton-dynamo up`
    assert int(argument(worker_command, "--system-port")) == stack.worker_system_port <= MAX_SYSTEM_PORT
    assert int(argument(worker_command, "--metrics-port")) == stack.worker_metrics_port
    assert float(ENV["WORKER_GRACE_PERIOD_S"]) == worker.grace_period_s
    assert int(ENV["WORKER_MAX_INFLIGHT"]) == worker.max_inflight
    # the load generator's client metrics port
    assert int(argument(s["locust"]["command"], "--client-metrics-port")) == LoadConfig().metrics_port


def _proxy_backends() -> dict[str, tuple[str, list[str], set[str]]]:
    """services/nghttpx/nghttpx.conf's backends: host -> (port, path patterns, parameters)."""
    conf = (REPO_ROOT / "services/nghttpx/nghttpx.conf").read_text()
    backends = {}
    for line in re.findall(r"^backend=(.*)$", conf, re.MULTILINE):
        address, patterns, *parameters = line.split(";")
        host, port = address.split(",")
        backends[host] = (port, patterns.split(":"), set(parameters))
    return backends


def test_the_proxy_routes_the_methods_up_routes_to_the_control_service() -> None:
    backends = _proxy_backends()
    assert set(backends) == {"control", "frontend"}
    assert backends["control"][1] == list(CONTROL_PATHS)
    assert backends["frontend"][1] == ["/"]  # everything else: inference and health


def test_the_proxy_has_the_settings_up_gives_it() -> None:
    conf = (REPO_ROOT / "services/nghttpx/nghttpx.conf").read_text()
    for line in SETTINGS.splitlines():
        assert re.search(rf"^{re.escape(line)}$", conf, re.MULTILINE), line


def test_the_proxy_speaks_http2_to_the_services_and_finds_recreated_containers() -> None:
    """HTTP/2 to both (gRPC), on one connection each that carries every call; ``dns`` looks the name up again for
    each new connection, so a recreated container is found at its new address."""
    for host, (_, _, parameters) in _proxy_backends().items():
        assert parameters == {"proto=h2", "dns"}, host


def test_the_proxy_is_stopped_gracefully(configs) -> None:
    """SIGQUIT is nghttpx's graceful shutdown (calls in flight finish); Compose's default, SIGTERM, drops them."""
    for config in configs.values():
        assert services(config)["tls-proxy"]["stop_signal"] == "SIGQUIT"
    assert "STOPSIGNAL SIGQUIT" in (REPO_ROOT / "services/nghttpx/Dockerfile").read_text().splitlines()


def test_dotenv_addresses_point_at_services_that_listen_there(configs) -> None:
    config = configs[GPU_STACK]
    listening = _listening_ports(config)
    for key in ("ETCD_ENDPOINTS", "NATS_SERVER", "OTLP_ENDPOINT", "FRONTEND_GRPC_ADDRESS"):
        value = ENV[key]
        parts = urlsplit(value if "://" in value else f"grpc://{value}")
        assert parts.hostname in services(config), f"{key}={value}: no service {parts.hostname}"
        assert parts.port in listening[parts.hostname], (
            f"{key}={value}: {parts.hostname} listens on {listening[parts.hostname]}"
        )
    assert ENV["OTLP_ENDPOINT"] == "http://otel-collector:4317"  # OTLP/gRPC, as the code expects


def test_traced_services_send_spans_and_logs_to_a_collector_pipeline_of_each(configs) -> None:
    # Dynamo's OTEL_EXPORT_ENABLED exports its log lines too, to the logs endpoint alone (localhost:4317 if unset)
    s = services(configs[GPU_STACK])
    for name in ("frontend", "worker"):
        env = s[name]["environment"]
        assert env["OTEL_EXPORT_ENABLED"] == "1", name
        assert (
            env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == ENV["OTLP_ENDPOINT"]
        )
    otel = yaml.safe_load((REPO_ROOT / "services/otel-collector/config.yaml").read_text())
    pipelines = otel["service"]["pipelines"]
    assert {"traces", "logs"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in otel[kind], f"pipeline {name}: {component} is not among the {kind}"


@pytest.mark.skipif(not PROMETHEUS_YML.exists(), reason="services/prometheus/prometheus.yml is not written yet")
def test_prometheus_targets_are_services_listening_there(configs) -> None:
    config = configs[GPU_STACK]
    listening = _listening_ports(config)
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    jobs = {}
    for job in prometheus["scrape_configs"]:
        targets = [t for static in job.get("static_configs") or [] for t in static["targets"]]
        targets += [f"{n}:{d['port']}" for d in job.get("dns_sd_configs") or [] for n in d["names"]]
        jobs[job["job_name"]] = targets
        for target in targets:
            host, port = target.rsplit(":", 1)
            host = "prometheus" if host == "localhost" else host
            assert host in listening, f"job {job['job_name']}: {target}: no such service"
            assert int(port) in listening[host], f"job {job['job_name']}: {target}: {host} listens on {listening[host]}"
    # the worker replicas are found by DNS (one A record each), so --scale needs no edit there
    worker_job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "worker")
    assert [d["names"] for d in worker_job["dns_sd_configs"]] == [["worker"]]
    assert worker_job["dns_sd_configs"][0]["type"] == "A"
    # Prometheus mounts the folder whose prometheus.yml this is, and runs with exemplar storage
    service = services(config)["prometheus"]
    assert any(Path(v["source"]) == PROMETHEUS_YML.parent for v in service["volumes"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    assert "--enable-feature=exemplar-storage" in service["command"]


GRAFANA_PROVISIONING = REPO_ROOT / "grafana" / "provisioning"


@pytest.mark.skipif(not GRAFANA_PROVISIONING.is_dir(), reason="grafana/provisioning is not written yet")
def test_grafana_provisioning_agrees_with_its_mounts_and_the_services(configs) -> None:
    config = configs[GPU_STACK]
    listening = _listening_ports(config)
    grafana = services(config)["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts[grafana["environment"]["GF_PATHS_PROVISIONING"]] == GRAFANA_PROVISIONING
    for path in sorted(GRAFANA_PROVISIONING.glob("dashboards/*.y*ml")):
        for provider in yaml.safe_load(path.read_text()).get("providers") or []:
            folder = provider["options"]["path"]
            assert folder in mounts, f"{path.name}: dashboards read from {folder}, which is not mounted"
            assert list(mounts[folder].glob("*.json")), f"{mounts[folder]} has no dashboard"
    for path in sorted(GRAFANA_PROVISIONING.glob("datasources/*.y*ml")):
        for source in yaml.safe_load(path.read_text()).get("datasources") or []:
            url = urlsplit(source["url"])
            assert url.port in listening.get(url.hostname, set()), f"{path.name}: {source['name']} at {source['url']}"
