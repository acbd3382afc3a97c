# SPDX-License-Identifier: Apache-2.0
"""The worker codec's one cost that grows with the tensor: a list of Python numbers (as Dynamo hands a worker every
tensor) into a float32 buffer, by the C loop (worker/_lists.c, what real_array uses from 256 values on) and by
array.array (below that). Prints microseconds per call and the ratio, at sizes around the crossing and at an image.

    uv run python benchmarks/codec.py
"""

from __future__ import annotations

import array
import ctypes
import random
import timeit

import numpy as np

from triton_dynamo.worker import lists

SIZES = (16, 60, 256, 4096, 150528)


def per_call_us(fn, repeat: int = 7) -> float:
    number = max(1, 20000 // max(1, len(fn.__defaults__[0]) // 64))
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    fp32 = np.dtype(np.float32)
    loader = lists._load()
    print(f"{'values':>8} {'C loop us':>10} {'array.array us':>15} {'array/C':>8}")
    for size in SIZES:
        values = [random.random() for _ in range(size)]

        def by_c(values=values) -> np.ndarray:
            out = np.empty(len(values), fp32)
            loader(values, ctypes.addressof(ctypes.c_char.from_buffer(out)), len(values), 4)  # as real_array does
            return out

        def by_array(values=values) -> np.ndarray:
            return np.frombuffer(array.array("f", values), fp32)

        c_us, array_us = per_call_us(by_c), per_call_us(by_array)
        print(f"{size:>8} {c_us:>10.2f} {array_us:>15.2f} {array_us / c_us:>8.2f}")
    print(f"real_array switches to the C loop at {lists._C_MIN_VALUES} values")


if __name__ == "__main__":
    main()
