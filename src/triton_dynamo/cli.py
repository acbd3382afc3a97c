# SPDX-License-Identifier: Apache-2.0
"""The ``triton-dynamo`` command: ``up`` (the whole stack on this machine), ``worker``, ``models``, ``infer``.

Each subcommand's options come with environment variables; ``triton-dynamo <command> --help`` lists them.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence

from .errors import TritonDynamoError, exit_code

logger = logging.getLogger(__name__)

USAGE = """usage: triton-dynamo <command> [options]

commands:
  up        run the Dynamo frontend (KServe gRPC) and N Triton workers on this machine
  worker    serve a Triton model repository as one Dynamo worker
  control   answer Triton's other gRPC RPCs (statistics, repository index, server metadata) for every worker
  models    list the models the frontend serves, and whether they are ready
  infer     send one request to a model through the frontend and print the outputs
  loadtest  run a Locust load test against the frontend and write its reports

triton-dynamo <command> --help shows each command's options.
"""


def raise_open_file_limit() -> None:
    """Servers hold a socket per connection and a pipe per Triton stub: take the hard limit of open files (a worker
    ran out at the usual soft limit of 1024 under load). Child processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def setup_logging() -> None:
    level = os.environ.get("TRITON_DYNAMO_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _worker(argv: Sequence[str]) -> int:
    # Triton forks its python backend stubs; grpcio's fork handlers (armed once the OTLP exporter opens a channel)
    # then abort the process ("Check failed: is_forking != was_forking"). The stubs exec at once and use no gRPC.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    import uvloop

    from .worker import WorkerConfig, serve

    config = WorkerConfig.from_args(argv)
    uvloop.run(serve(config))
    return 0


def _control(argv: Sequence[str]) -> int:
    import uvloop

    from .control.config import ControlConfig
    from .control.service import serve

    uvloop.run(serve(ControlConfig.from_args(argv)))
    return 0


def _commands() -> dict[str, Callable[[Sequence[str]], int]]:
    commands: dict[str, Callable[[Sequence[str]], int]] = {"worker": _worker, "control": _control}
    from .client.cli import infer, models
    from .loadgen.cli import loadtest
    from .stack.cli import up

    commands.update(up=up, models=models, infer=infer, loadtest=loadtest)
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    commands = _commands()
    command = commands.get(argv[0])
    if command is None:
        print(f"triton-dynamo: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    setup_logging()
    raise_open_file_limit()
    try:
        return command(argv[1:])
    except TritonDynamoError as exc:
        logger.error("%s", exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
