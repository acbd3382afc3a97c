# SPDX-License-Identifier: Apache-2.0
"""`triton-dynamo infer` against the stack: the exit status follows the status table (errors.EXIT_CODES) whether the
frontend or a worker refused the request."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .processes import StackProcess


def infer(stack: StackProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "triton_dynamo", "infer", *args, "--url", stack.grpc_url],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "exit_status", "said"),
    [
        # the worker refuses it (a rank the model's config does not allow): INTERNAL on the wire, the worker's
        # INVALID_ARGUMENT in the message
        (("add_sub", "--input", "INPUT0=[1.0, 2.0, 3.0]"), 2, "[INVALID_ARGUMENT]"),
        # the frontend does not know the model
        (("no_such_model",), 3, "no_such_model"),
        # served: no error
        (("identity", "--input", "INPUT0=[1, 2, 3]"), 0, "output OUTPUT0 [3]: [1, 2, 3]"),
    ],
    ids=["worker-invalid-argument", "unknown-model", "ok"],
)
def test_exit_status_follows_the_status_table(
    file_stack: StackProcess, args: tuple[str, ...], exit_status: int, said: str
) -> None:
    done = infer(file_stack, *args)
    assert done.returncode == exit_status, (done.stdout, done.stderr)
    assert said in done.stdout + done.stderr, (done.stdout, done.stderr)
