# SPDX-License-Identifier: Apache-2.0
"""Is an answer right? Checks for the sample models of ``model_repo/`` and for samples that carry ``expected``.

A check returns None when the answer is right and otherwise a short message that is the same for every wrong answer
of its kind (failures are grouped by message); the first wrong answer of each model is also logged with its values.
The classifier is checked against its own ``weights()`` and ``forward()`` (its ``model.py``, loaded with a stand-in
for ``triton_python_backend_utils``); without that file only the consistency of CLASS with PROBABILITIES is checked.

Example:
    >>> checker = Checker(model_repository=None)
    >>> x = np.arange(3, dtype=np.int32)
    >>> checker.check("identity", {"INPUT0": x}, [{"OUTPUT0": x}], None) is None
    True
    >>> checker.check("identity", {"INPUT0": x}, [{"OUTPUT0": x + 1}], None)
    'wrong answer from identity: OUTPUT0 differs from INPUT0'
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

Outputs = Mapping[str, np.ndarray]
# A model's check: (inputs, every response's outputs) -> what is wrong, or None.
ModelCheck = Callable[[Mapping[str, np.ndarray], Sequence[Outputs]], "str | None"]
# Two classes whose probabilities are this close may come out in either order from batched and unbatched math.
TIE_GAP = 1e-5


def same(a: np.ndarray | None, b: np.ndarray) -> bool:
    """Same shape and, bit for bit, the same values (BYTES: the same byte strings)."""
    if a is None or a.shape != b.shape:
        return False
    if a.dtype == object or b.dtype == object:
        return [bytes(x) for x in a.reshape(-1)] == [bytes(x) for x in b.reshape(-1)]
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def close(a: np.ndarray | None, b: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Same shape, and the same values: floats (BF16 included) within tolerance, anything else exactly."""
    if a is None or a.shape != b.shape:
        return False
    if a.dtype == object or b.dtype == object:
        return same(a, b)
    if a.dtype.kind in "fV" or b.dtype.kind in "fV":
        return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(a, b))


def _upper(item: bytes) -> bytes:
    try:
        return item.decode("utf-8").upper().encode("utf-8")
    except UnicodeDecodeError:
        return item.upper()


def _one(responses: Sequence[Outputs]) -> Outputs | str:
    return responses[0] if len(responses) == 1 else f"{len(responses)} responses, expected 1"


def check_identity(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
    out = _one(responses)
    if isinstance(out, str):
        return out
    return None if same(out.get("OUTPUT0"), inputs["INPUT0"]) else "OUTPUT0 differs from INPUT0"


def check_add_sub(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
    out = _one(responses)
    if isinstance(out, str):
        return out
    a, b = inputs["INPUT0"], inputs["INPUT1"]
    if not close(out.get("OUTPUT0"), a + b):
        return "OUTPUT0 is not INPUT0 + INPUT1"
    if not close(out.get("OUTPUT1"), a - b):
        return "OUTPUT1 is not INPUT0 - INPUT1"
    return None


def check_string_ops(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
    out = _one(responses)
    if isinstance(out, str):
        return out
    text = inputs["TEXT"]
    upper = np.empty(text.size, dtype=object)
    upper[:] = [_upper(bytes(x)) for x in text.reshape(-1)]
    upper = upper.reshape(text.shape)
    if not same(out.get("UPPER"), upper):
        return "UPPER is not TEXT upper-cased"
    lengths = np.array([len(bytes(x)) for x in text.reshape(-1)], dtype=np.int32).reshape(text.shape)
    return None if same(out.get("LENGTH"), lengths) else "LENGTH is not the byte length of TEXT"


def check_repeat(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
    values = inputs["VALUES"].reshape(-1)
    if len(responses) != len(values):
        return "the number of responses is not the number of VALUES"
    for index, (value, response) in enumerate(zip(values, responses, strict=True)):
        if not same(response.get("VALUE"), np.array([value], dtype=np.int32)):
            return "a VALUE differs from its element of VALUES"
        if not same(response.get("INDEX"), np.array([index], dtype=np.int32)):
            return "an INDEX is not the response's position"
    return None


def check_echo_all(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
    out = _one(responses)
    if isinstance(out, str):
        return out
    for name, array in inputs.items():
        output = "OUT_" + name.removeprefix("IN_")
        if not same(out.get(output), array):
            return f"{output} differs from {name}"
    return None


def classifier_check(layers: list | None, forward: Callable | None) -> ModelCheck:
    """The classifier's check: with the model's weights, the answer must be the model's own output; without, CLASS
    must be the argmax of PROBABILITIES, which must sum to 1."""

    def check(inputs: Mapping[str, np.ndarray], responses: Sequence[Outputs]) -> str | None:
        out = _one(responses)
        if isinstance(out, str):
            return out
        probabilities, classes = out.get("PROBABILITIES"), out.get("CLASS")
        features = inputs["FEATURES"]
        batch = features.shape[0]
        if (
            probabilities is None
            or classes is None
            or probabilities.shape != (batch, 10)
            or classes.shape != (batch, 1)
        ):
            return "PROBABILITIES or CLASS is missing or has the wrong shape"
        if layers is not None and forward is not None:
            reference = forward(layers, features.astype(np.float32))
            if not np.allclose(probabilities, reference, atol=1e-4):
                return "PROBABILITIES differ from the model's own forward pass"
        else:
            reference = probabilities
            if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
                return "PROBABILITIES do not sum to 1"
        ranked = np.sort(reference, axis=1)
        tie = (ranked[:, -1] - ranked[:, -2]) < TIE_GAP
        if not np.all(tie | (classes.reshape(-1) == reference.argmax(axis=1))):
            return "CLASS is not the argmax of the probabilities"
        return None

    return check


@contextlib.contextmanager
def _stand_in_backend_utils() -> Iterator[None]:
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["triton_python_backend_utils"]
        else:
            sys.modules["triton_python_backend_utils"] = saved


def load_classifier(model_repository: Path | None) -> tuple[list | None, Callable | None]:
    """The classifier's layers and forward function from its model.py; (None, None) when it is not there."""
    path = Path(model_repository or "") / "classifier" / "1" / "model.py"
    if model_repository is None or not path.is_file():
        return None, None
    spec = importlib.util.spec_from_file_location("triton_dynamo_classifier_reference", path)
    module = importlib.util.module_from_spec(spec)
    with _stand_in_backend_utils():
        spec.loader.exec_module(module)
    return module.weights(), module.forward


def check_expected(expected: Sequence[Outputs], responses: Sequence[Outputs]) -> str | None:
    """The sample's own expectation: one map per response, each named output equal (floats within tolerance)."""
    if len(responses) != len(expected):
        return f"{len(responses)} responses, expected {len(expected)}"
    for want, got in zip(expected, responses, strict=True):
        for name, array in want.items():
            if not close(got.get(name), array):
                return f"{name} differs from the sample's expected value"
    return None


class Checker:
    """Checks answers of the known sample models, and of any sample with ``expected`` (which wins)."""

    def __init__(self, model_repository: Path | None) -> None:
        layers, forward = load_classifier(model_repository)
        if layers is None:
            logger.info("classifier answers are checked for consistency only: no %s", model_repository)
        self.checks: dict[str, ModelCheck] = {
            "identity": check_identity,
            "identity_fp32": check_identity,
            "add_sub": check_add_sub,
            "string_ops": check_string_ops,
            "repeat": check_repeat,
            "echo_all": check_echo_all,
            "classifier": classifier_check(layers, forward),
        }
        self._reported: set[str] = set()

    def can_check(self, model: str, expected: Sequence[Outputs] | None) -> bool:
        return expected is not None or model in self.checks

    def check(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        responses: Sequence[Outputs],
        expected: Sequence[Outputs] | None,
    ) -> str | None:
        """None when the answer is right; otherwise 'wrong answer from MODEL: what'."""
        if expected is not None:
            problem = check_expected(expected, responses)
        elif model in self.checks:
            try:
                problem = self.checks[model](inputs, responses)
            except (KeyError, ValueError, TypeError) as exc:
                problem = f"the answer cannot be checked: {type(exc).__name__}"
        else:
            return None
        if problem is None:
            return None
        if model not in self._reported:
            self._reported.add(model)
            logger.warning("first wrong answer from %s: %s; inputs %s; answer %s", model, problem, inputs, responses)
        return f"wrong answer from {model}: {problem}"
