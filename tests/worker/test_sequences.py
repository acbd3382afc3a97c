# SPDX-License-Identifier: Apache-2.0
"""Which worker owns a sequence: the id read as Triton reads it, and rendezvous hashing's properties that the fleet
relies on (every worker agrees; a worker joining or leaving moves only the sequences it gains or held)."""

from __future__ import annotations

from typing import Any

import pytest

from triton_dynamo.worker.sequences import owner, sequence_id


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"sequence_id": {"int64": 7}}, 7),
        ({"sequence_id": {"string": "user-1"}}, "user-1"),
        ({"sequence_id": 9}, 9),
        ({"sequence_id": "s"}, "s"),
        ({"sequence_id": {"int64": 0}}, None),  # Triton: not part of a sequence
        ({"sequence_id": {"string": ""}}, None),
        ({"sequence_id": {"bool": True}}, None),  # Triton refuses the kind; the request goes to Triton as it is
        ({"sequence_id": {"double": 1.5}}, None),
        ({"sequence_id": True}, None),
        ({"custom": {"int64": 7}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_sequence_id(parameters: Any, expected: Any) -> None:
    assert sequence_id(parameters) == expected


def test_every_worker_agrees_whatever_order_it_sees_the_fleet_in() -> None:
    workers = [0x1A, 0x2B, 0x3C, 0x4D]
    for sequence in [*range(1, 200), "a", "b", "user-42"]:
        chosen = {owner(sequence, order) for order in (workers, workers[::-1], sorted(workers, key=str))}
        assert len(chosen) == 1 and chosen <= set(workers)


def test_an_int_id_and_the_same_digits_as_a_string_are_different_sequences() -> None:
    workers = range(1, 65)
    assert any(owner(n, workers) != owner(str(n), workers) for n in range(1, 50))


def test_sequences_spread_over_the_workers() -> None:
    counts = {0xA: 0, 0xB: 0}
    for sequence in range(1, 2001):
        counts[owner(sequence, counts)] += 1
    assert all(800 <= count <= 1200 for count in counts.values()), counts


def test_a_worker_joining_takes_only_sequences_it_gains_and_leaving_moves_only_its_own() -> None:
    before, after = [1, 2, 3], [1, 2, 3, 4]
    moved = [s for s in range(1, 3001) if owner(s, before) != owner(s, after)]
    assert all(owner(s, after) == 4 for s in moved)  # a joining worker takes sequences; none move between others
    assert 500 <= len(moved) <= 1000, len(moved)  # about a quarter
    for sequence in range(1, 3001):
        if owner(sequence, before) != 3:
            assert owner(sequence, [1, 2]) == owner(sequence, before)  # 3 left: only its sequences moved


def test_no_worker_no_owner() -> None:
    with pytest.raises(ValueError):
        owner(1, [])
