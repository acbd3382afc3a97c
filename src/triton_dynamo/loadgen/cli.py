# SPDX-License-Identifier: Apache-2.0
"""``triton-dynamo loadtest``: a headless Locust run against a running stack, with its reports in one folder.

Locust runs as a child process (``python -m locust -f <locustfile> --headless ...``), not through its library API,
because importing Locust monkey-patches the whole process with gevent and gRPC must be switched to gevent before its
first channel: in a child, that touches nothing of the ``triton-dynamo`` process, and Locust's own ``main`` keeps
doing what it does well (signals, CSV and HTML reports, exit code, master and workers). With ``--workers N`` the
command starts a master and N worker processes on this machine.

The locustfile is the repository's ``loadtest/locustfile.py`` when the package was installed from a checkout, else
the copy inside the package (``triton_dynamo/loadgen/locustfile.py``); ``--locustfile`` picks another.

Reports in ``--out-dir``: ``report.html``, ``stats_stats.csv`` (and Locust's other CSVs), ``summary.json``, and
``worker-N.log`` for workers. Options after ``--`` go to Locust unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .. import settings
from ..client.config import StackAddress
from ..errors import ConfigurationError
from ..settings import setting
from .config import SHAPES, LoadConfig, add_arguments, to_argv
from .summary import format_table

logger = logging.getLogger(__name__)

PACKAGE_LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REPO_LOCUSTFILE = Path(__file__).resolve().parents[3] / "loadtest" / "locustfile.py"


@dataclass(frozen=True, kw_only=True)
class LoadtestConfig(StackAddress):
    """The options of ``triton-dynamo loadtest`` itself; the load generator's own (``--models``...) come on top."""

    ENV_PREFIX: ClassVar[str] = "TRITON_DYNAMO_LOAD_"

    users: int = setting(8, help="users (constant; spike: before)")
    spawn_rate: float = setting(8.0, help="users started per second")
    duration_s: float = setting(
        60.0,
        help="length of the test; for step and spike an upper bound (0: the shape's own length)",
    )
    out_dir: Path | None = setting(None, help="folder for the reports; default: loadtest-results/<UTC time>")
    workers: int = setting(0, help="Locust worker processes; 0: one process")
    locustfile: Path | None = setting(
        None,
        env="TRITON_DYNAMO_LOCUSTFILE",
        help="locustfile to run; default: the repository's loadtest/locustfile.py, else the package's copy",
    )

    def __post_init__(self) -> None:
        if self.users < 1 or self.spawn_rate <= 0 or self.duration_s < 0 or self.workers < 0:
            raise ConfigurationError("need --users >= 1, --spawn-rate > 0, --duration-s >= 0, --workers >= 0")

    @property
    def reports_dir(self) -> Path:
        return self.out_dir or Path("loadtest-results") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    @property
    def locustfile_path(self) -> Path:
        if self.locustfile is not None:
            return self.locustfile
        return REPO_LOCUSTFILE if REPO_LOCUSTFILE.is_file() else PACKAGE_LOCUSTFILE


def parse(argv: Sequence[str]) -> tuple[LoadtestConfig, LoadConfig, list[str], list[str]]:
    """(this command's config, the load generator's config, its flags to pass on, Locust's own extra args)."""
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = settings.build_parser(
        LoadtestConfig,
        "triton-dynamo loadtest",
        f"Run a headless Locust load test against a running stack (shapes: {', '.join(SHAPES)}); reports go to "
        "--out-dir. Options after -- go to Locust unchanged.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    own_fields = {f.name for f in dataclasses.fields(LoadtestConfig)}
    own = settings.from_env(LoadtestConfig, **{k: v for k, v in vars(args).items() if k in own_fields})
    load = LoadConfig.from_options(args)  # validates the load generator's options here, before anything starts
    return own, load, to_argv(args), extra


def free_port() -> int:
    """A free port on loopback below 32768, away from the kernel's ephemeral range."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise ConfigurationError("no free port for the Locust master")


def locust_argv(own: LoadtestConfig, passed: list[str], extra: list[str], out_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(own.locustfile_path), "--headless", "-H", own.url]
    argv += ["-u", str(own.users), "-r", str(own.spawn_rate)]
    if own.duration_s > 0:
        argv += ["-t", f"{own.duration_s:g}s"]
    argv += ["--csv", str(out_dir / "stats"), "--html", str(out_dir / "report.html")]
    argv += ["--summary-json", str(out_dir / "summary.json"), *passed, *extra]
    return argv


def loadtest(argv: Sequence[str]) -> int:
    """Run the load test; the exit status is Locust's (1 when any request failed), or 1 without a summary."""
    own, _load, passed, extra = parse(argv)
    out_dir = own.reports_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if not own.locustfile_path.is_file():
        raise ConfigurationError(f"locustfile {str(own.locustfile_path)!r} not found")
    master = locust_argv(own, passed, extra, out_dir)
    workers: list[subprocess.Popen] = []
    logs = []
    if own.workers:
        port = free_port()
        master += ["--master", "--expect-workers", str(own.workers), "--master-bind-host", "127.0.0.1"]
        master += ["--master-bind-port", str(port)]
        base = [sys.executable, "-m", "locust", "-f", str(own.locustfile_path), "--worker"]
        base += ["--master-host", "127.0.0.1", "--master-port", str(port), *passed]
        for i in range(own.workers):
            logs.append(open(out_dir / f"worker-{i}.log", "wb"))  # noqa: SIM115 -- closed below
            workers.append(subprocess.Popen(base, stdout=logs[-1], stderr=subprocess.STDOUT))
    logger.info("running %s", " ".join(master))
    try:
        code = subprocess.call(master)
    except KeyboardInterrupt:
        code = 130  # the children got the same Ctrl-C from the terminal
    finally:
        for proc in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        logger.error("Locust exited with %d and wrote no summary; see its output above", code)
        return code or 1
    summary = json.loads(summary_path.read_text())
    print("\n".join(format_table(summary)))
    print(f"reports: {out_dir / 'report.html'}, {out_dir / 'stats_stats.csv'}, {summary_path}")
    if summary["overall"]["requests"] == 0:
        logger.error("no request was sent: see Locust's output above%s", " and the worker logs" if workers else "")
        return code or 1
    return code
