# SPDX-License-Identifier: Apache-2.0
"""Triton's reserved request parameters, treated as Triton's gRPC server treats them (``SetInferenceRequestMetadata``
in Triton 2.51): ``sequence_id``, ``sequence_start``, ``sequence_end``, ``priority`` and ``timeout`` become the
request's correlation id, flags, scheduling priority and queue timeout rather than parameters the model sees, and any
other key starting with ``triton_`` that Triton does not know is refused. tritonclient sets them from ``infer``'s
``sequence_id``, ``sequence_start``, ``sequence_end``, ``priority`` and ``timeout`` arguments.

Works on Dynamo's typed parameter dicts (``{"int64": 5}``), whose kind Triton checks.

Example:
    >>> split_request_fields({"priority": {"int64": 2}, "timeout": {"int64": 500}, "custom": {"int64": 5}})
    ({'custom': {'int64': 5}}, {'priority': 2, 'timeout_us': 500})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput

# TRITONSERVER_REQUEST_FLAG_SEQUENCE_START and _END
SEQUENCE_START = 1
SEQUENCE_END = 2

# Triton 2.51's TRITON_RESERVED_REQUEST_PARAMS: the only keys starting with "triton_" it accepts.
TRITON_RESERVED = ("triton_enable_empty_final_response",)

_PYTHON_KINDS = ((bool, "bool"), (int, "int64"), (float, "double"), (str, "string"))


def typed_parameter(value: Any) -> tuple[str, Any]:
    """(kind, value) of one of Dynamo's typed parameters (``{"int64": 5}``), or of a bare value (its kind from its
    Python type); ("", None) for None."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, plain),) = value.items()
        return kind, plain
    for python_type, kind in _PYTHON_KINDS:
        if isinstance(value, python_type):
            return kind, value
    return "", value


def split_request_fields(parameters: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the parameters left for the model, unchanged; keyword fields of an InferenceRequest).

    Raises :class:`InvalidInput` with Triton's message for a reserved parameter of the wrong kind or value.
    """
    left: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    flags = 0
    for key, value in (parameters or {}).items():
        kind, plain = typed_parameter(value)
        if key == "sequence_id":
            if kind not in ("int64", "string"):
                raise InvalidInput(
                    "invalid value type for 'sequence_id' parameter, expected int64_param or string_param."
                )
            fields["correlation_id"] = plain
        elif key in ("sequence_start", "sequence_end"):
            if kind != "bool":
                raise InvalidInput(f"invalid value type for '{key}' parameter, expected bool_param.")
            if plain:
                flags |= SEQUENCE_START if key == "sequence_start" else SEQUENCE_END
        elif key == "priority":
            if kind not in ("int64", "uint64"):
                raise InvalidInput("invalid value type for 'priority' parameter, expected int64_param or uint64_param.")
            if plain < 0:
                raise InvalidInput("invalid value for 'priority', expected value >= 0.")
            fields["priority"] = plain
        elif key == "timeout":
            if kind != "int64":
                raise InvalidInput("invalid value type for 'timeout' parameter, expected int64_param.")
            fields["timeout_us"] = plain
        elif key.startswith("triton_") and key not in TRITON_RESERVED:
            raise InvalidInput(
                "parameter keys starting with 'triton_' are reserved for Triton usage. Only the following keys "
                f"starting with 'triton_' are allowed: {' '.join(TRITON_RESERVED)}"
            )
        else:
            left[key] = value
    if flags:
        fields["flags"] = flags
    return left, fields
