# SPDX-License-Identifier: Apache-2.0
"""The TLS proxy (services/nghttpx/nghttpx.conf, as compose.yaml runs it) in front of the frontend of the local run,
with a certificate made by services/nghttpx/make-dev-cert.sh."""

from __future__ import annotations

from typing import Any

from .conftest import check_passed


def test_tls_client_gets_correct_answers_through_the_proxy(local_run: dict[str, Any]) -> None:
    answers = check_passed(local_run, "tls_proxy")
    assert answers["identity"] == [4, 5, 6]
    assert answers["repeat"] == [[8, 0], [9, 1]]  # a stream of a decoupled model, through nghttpx


def test_plaintext_grpc_to_the_tls_port_is_refused(local_run: dict[str, Any]) -> None:
    error = check_passed(local_run, "tls_port_refuses_plaintext")
    assert "UNAVAILABLE" in error or "INTERNAL" in error, error
