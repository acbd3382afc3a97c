# SPDX-License-Identifier: Apache-2.0
"""Lists of Python numbers into numpy float arrays, in C (``td_reals_from_list`` in ``_lists.c``, built beside it).

Dynamo hands a worker every tensor as a flat list of Python numbers. For FP32 and FP64, the types of the large tensors
(images, embeddings), turning that list into a buffer Triton can read is the one step of a request whose cost grows
with the tensor; ``benchmarks/codec.py`` measures the C loop against ``array.array``.

Example:
    >>> import numpy as np
    >>> real_array([1, 2.5, True], np.dtype(np.float32))
    array([1. , 2.5, 1. ], dtype=float32)
"""

from __future__ import annotations

import array
import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import Status, TritonDynamoError

LIBRARY = Path(__file__).with_name("_tdlists.so")
_REAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_reals_from_list = None  # loaded on first use
# Below this many values array.array costs less (its fixed cost is lower, its cost per value higher: benchmarks/codec.py
# prints both and where they cross).
_C_MIN_VALUES = 256


def _load() -> ctypes._CFuncPtr:
    if not LIBRARY.exists():
        raise TritonDynamoError(
            f"the worker's list converter ({LIBRARY}) is missing: the package was installed without its build step. "
            "Reinstall it so that it is built with a C compiler (`uv sync --reinstall-package triton-dynamo`)",
            status=Status.UNAVAILABLE,
        )
    fn = ctypes.PyDLL(str(LIBRARY)).td_reals_from_list  # PyDLL: it calls into Python, under the GIL
    fn.argtypes = (ctypes.py_object, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


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
        _reals_from_list = _load()
    out = np.empty(len(values), dtype)
    # the address through from_buffer: out.ctypes.data builds an object, several times the cost
    _reals_from_list(values, ctypes.addressof(ctypes.c_char.from_buffer(out)), len(values), dtype.itemsize)
    return out
