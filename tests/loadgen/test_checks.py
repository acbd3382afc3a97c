# SPDX-License-Identifier: Apache-2.0
"""Answer checks: right answers pass, wrong ones give a stable message naming the model and what is wrong."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tests.conftest import MODEL_REPO
from triton_dynamo.client.inputs import synthesize_inputs
from triton_dynamo.loadgen.checks import Checker

ECHO_ALL_TYPES = ("BOOL", "UINT8", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES")


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(MODEL_REPO)


def _bytes(*items: bytes) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


def test_identity_and_identity_fp32_must_echo(checker: Checker) -> None:
    x = np.array([1.5, -2.0], dtype=np.float32)
    assert checker.check("identity_fp32", {"INPUT0": x}, [{"OUTPUT0": x.copy()}], None) is None
    wrong = checker.check("identity_fp32", {"INPUT0": x}, [{"OUTPUT0": x[::-1].copy()}], None)
    assert wrong == "wrong answer from identity_fp32: OUTPUT0 differs from INPUT0"
    assert "OUTPUT0 differs" in checker.check("identity", {"INPUT0": x}, [{"OUTPUT0": x.astype(np.float64)}], None)
    assert "2 responses" in checker.check("identity", {"INPUT0": x}, [{"OUTPUT0": x}, {"OUTPUT0": x}], None)


def test_add_sub_sum_and_difference(checker: Checker) -> None:
    a, b = np.ones((2, 4), np.float32), np.full((2, 4), 0.25, np.float32)
    assert checker.check("add_sub", {"INPUT0": a, "INPUT1": b}, [{"OUTPUT0": a + b, "OUTPUT1": a - b}], None) is None
    wrong = checker.check("add_sub", {"INPUT0": a, "INPUT1": b}, [{"OUTPUT0": a + b, "OUTPUT1": b - a}], None)
    assert wrong == "wrong answer from add_sub: OUTPUT1 is not INPUT0 - INPUT1"


def test_string_ops_upper_and_byte_length(checker: Checker) -> None:
    text = _bytes(b"triton", "\u00fcber".encode(), b"\xff")
    right = {"UPPER": _bytes(b"TRITON", "\u00dcBER".encode(), b"\xff"), "LENGTH": np.array([6, 5, 1], np.int32)}
    assert checker.check("string_ops", {"TEXT": text}, [right], None) is None
    wrong = {**right, "LENGTH": np.array([6, 4, 1], np.int32)}
    assert "LENGTH is not the byte length" in checker.check("string_ops", {"TEXT": text}, [wrong], None)
    assert "UPPER" in checker.check("string_ops", {"TEXT": text}, [{**right, "UPPER": text}], None)


def test_repeat_values_and_indices_in_order(checker: Checker) -> None:
    values = np.array([5, 6, 7], dtype=np.int32)
    responses = [{"VALUE": np.array([v], np.int32), "INDEX": np.array([i], np.int32)} for i, v in enumerate(values)]
    assert checker.check("repeat", {"VALUES": values}, responses, None) is None
    assert "number of responses" in checker.check("repeat", {"VALUES": values}, responses[:2], None)
    swapped = [responses[1], responses[0], responses[2]]
    assert "VALUE differs" in checker.check("repeat", {"VALUES": values}, swapped, None)


def test_echo_all_every_type_bit_for_bit(checker: Checker) -> None:
    metadata = {"inputs": [{"name": f"IN_{t}", "datatype": t, "shape": [-1]} for t in ECHO_ALL_TYPES]}
    inputs = synthesize_inputs(metadata, {}, variable_dim=5, seed=3)
    outputs = {"OUT_" + name[3:]: array.copy() for name, array in inputs.items()}
    assert checker.check("echo_all", inputs, [outputs], None) is None
    outputs["OUT_BF16"] = (outputs["OUT_BF16"].astype(np.float32) + 1).astype(outputs["OUT_BF16"].dtype)
    assert (
        checker.check("echo_all", inputs, [outputs], None)
        == "wrong answer from echo_all: OUT_BF16 differs from IN_BF16"
    )


def test_classifier_against_its_own_weights(checker: Checker, classifier_reference: types.ModuleType) -> None:
    features = np.random.default_rng(5).uniform(-1, 1, (3, 64)).astype(np.float32)
    probabilities = classifier_reference.forward(classifier_reference.weights(), features)
    classes = probabilities.argmax(axis=1).astype(np.int64).reshape(-1, 1)
    right = {"PROBABILITIES": probabilities, "CLASS": classes}
    assert checker.check("classifier", {"FEATURES": features}, [right], None) is None
    wrong_class = {**right, "CLASS": (classes + 1) % 10}
    assert "CLASS is not the argmax" in checker.check("classifier", {"FEATURES": features}, [wrong_class], None)
    # consistent with itself, but not what the model computes
    other = np.roll(probabilities, 1, axis=1)
    fake = {"PROBABILITIES": other, "CLASS": other.argmax(axis=1).reshape(-1, 1)}
    assert "forward pass" in checker.check("classifier", {"FEATURES": features}, [fake], None)


def test_classifier_without_its_weights_checks_consistency_only(tmp_path, classifier_reference) -> None:
    checker = Checker(tmp_path)  # no classifier/1/model.py there
    features = np.random.default_rng(6).uniform(-1, 1, (1, 64)).astype(np.float32)
    other = np.roll(classifier_reference.forward(classifier_reference.weights(), features), 1, axis=1)
    fake = {"PROBABILITIES": other, "CLASS": other.argmax(axis=1).reshape(-1, 1)}
    assert checker.check("classifier", {"FEATURES": features}, [fake], None) is None
    assert "argmax" in checker.check("classifier", {"FEATURES": features}, [{**fake, "CLASS": fake["CLASS"] + 1}], None)


def test_a_samples_expectation_wins_and_unknown_models_pass(checker: Checker) -> None:
    x = np.array([1, 2], dtype=np.int32)
    expected = ({"OUTPUT0": np.array([9, 9], dtype=np.int32)},)
    assert checker.can_check("identity", None) and checker.can_check("mine", expected)
    assert not checker.can_check("mine", None)
    message = checker.check("identity", {"INPUT0": x}, [{"OUTPUT0": x}], expected)
    assert message == "wrong answer from identity: OUTPUT0 differs from the sample's expected value"
    assert checker.check("mine", {"INPUT0": x}, [{"OUTPUT0": x}], None) is None
    assert "1 responses, expected 2" in checker.check("m", {}, [{}], (expected[0], expected[0]))
    floats = ({"Y": np.array([0.1], np.float32)},)
    assert checker.check("m", {}, [{"Y": np.array([0.1 + 1e-8], np.float32)}], floats) is None
