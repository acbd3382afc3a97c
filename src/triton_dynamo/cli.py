"""The ``triton-dynamo`` command: ``up`` (the whole stack on this machine), ``worker``, ``models``, ``infer``.

Each subcommand's options come with environment variables; ``triton-dynamo <command> --help`` lists them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from .errors import TritonDynamoError, exit_code

logger = logging.getLogger(__name__)

USAGE = """usage: triton-dynamo <command> [options]

commands:
  up        run the Dynamo frontend (KServe gRPC) and N Triton workers on this machine
  worker    serve a Triton model repository as one Dynamo worker
  models    list the models the frontend serves, and whether they are ready
  infer     send one request to a model through the frontend and print the outputs

triton-dynamo <command> --help shows each command's options.
"""


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


def _commands() -> dict[str, Callable[[Sequence[str]], int]]:
    commands: dict[str, Callable[[Sequence[str]], int]] = {"worker": _worker}
    try:
        from .stack.cli import up

        commands["up"] = up
    except ImportError:
        pass
    try:
        from .client.cli import infer, models

        commands.update(models=models, infer=infer)
    except ImportError:
        pass
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
    try:
        return command(argv[1:])
    except TritonDynamoError as exc:
        logger.error("%s", exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
