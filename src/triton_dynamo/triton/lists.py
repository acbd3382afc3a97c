# SPDX-License-Identifier: Apache-2.0
"""Lists of Python numbers into numpy float arrays, in C (``td_reals_from_list`` in ``_shim.c``).

Dynamo hands a worker every tensor as a flat list of Python numbers. For FP32 and FP64, the types of the large tensors
(images, embeddings), turning that list into a buffer Triton can read is the one step of a request whose cost grows
with the tensor: 0.5 ms for 150528 values here, against 2.2 ms through ``array.array``.

Example:
    >>> import numpy as np
    >>> real_array([1, 2.5, True], np.dtype(np.float32))
    array([1. , 2.5, 1. ], dtype=float32)
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np

from . import _capi as C

_REAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_reals_from_list = None  # loaded on first use
# Below this many values array.array costs less (its fixed cost: 0.66 against 1.3 us at 16 values; per value 14 against
# 3 ns): the crossing is near 60.
_C_MIN_VALUES = 256


def real_array(values: Sequence, dtype: np.dtype) -> np.ndarray:
    """``values`` as a new one-dimensional array of ``dtype`` (float32 or float64), converted as ``float()`` does.

    Raises TypeError for an item that is not a real number and OverflowError for an int beyond a double, as
    ``array.array`` does; a float beyond float32's range becomes infinity, as it does there.
    """
    global _reals_from_list
    if dtype not in _REAL_DTYPES:
        raise ValueError(f"real_array makes float32 or float64 arrays, not {dtype}")
    if len(values) < _C_MIN_VALUES or type(values) is not list:  # the C loop reads lists only
        return np.frombuffer(array.array(dtype.char, values), dtype)
    if _reals_from_list is None:
        _reals_from_list = C.reals_from_list()
    out = np.empty(len(values), dtype)
    _reals_from_list(values, C.address(out), len(values), dtype.itemsize)
    return out
