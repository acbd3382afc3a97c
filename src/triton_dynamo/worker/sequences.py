# SPDX-License-Identifier: Apache-2.0
"""Which worker serves a sequence: every request of a stateful model's sequence must reach the same Triton, since the
state lives in that Triton's sequence batcher and model instance. Dynamo 1.6.1's frontend picks a worker at random for
each request (:mod:`.peers` says why), so the worker that gets a request of a sequence forwards it to the sequence's
owner, which every worker computes alike from the sequence id and the workers serving the model.

The owner is chosen by rendezvous (highest random weight) hashing: each worker's weight for a sequence is a hash of
both, the heaviest owns it. When a worker joins or leaves, only the sequences it gains or held move; a sequence that
moves in the middle loses its state, and Triton refuses its next request for lacking the START flag.

Example:
    >>> sequence_id({"sequence_id": {"int64": 7}, "custom": {"int64": 1}})
    7
    >>> sequence_id({"sequence_id": {"int64": 0}}) is None  # 0 and "" mean "no sequence", as in Triton
    True
    >>> owner(7, [3, 1, 2]) == owner(7, [2, 3, 1])
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from .request_fields import typed_parameter


def sequence_id(parameters: Mapping[str, Any] | None) -> int | str | None:
    """The request's sequence id from its reserved ``sequence_id`` parameter (Dynamo's typed form or a bare value);
    None when it has none, or 0 or "" (Triton's "not part of a sequence"), or one of a kind Triton refuses (the
    request then reaches Triton, whose refusal the client gets)."""
    kind, value = typed_parameter((parameters or {}).get("sequence_id"))
    return (value or None) if kind in ("int64", "string") else None


def _weight(worker: int, sequence: int | str) -> int:
    key = f"{worker:x}/{type(sequence).__name__}:{sequence}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def owner(sequence: int | str, workers: Iterable[int]) -> int:
    """The worker (by instance id) that serves ``sequence`` among ``workers``; the same answer in every process, for
    any order of ``workers``. Raises ValueError when there are none."""
    return max(workers, key=lambda worker: (_weight(worker, sequence), worker))
