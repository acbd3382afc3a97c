/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's codec, in C: Dynamo hands a worker every tensor as a list of Python numbers, and for FP32 and FP64,
 * the types of the large tensors, turning that list into a buffer is the one step of a request whose cost grows with
 * the tensor (benchmarks/codec.py measures it against array.array). Built by the package build (hatch_build.py)
 * into _tdlists.so beside this file; needs no Triton.
 */
#include <stddef.h>
#include <sys/types.h>

#define TD_EXPORT __attribute__((visibility("default")))

/*
 * A Python list of numbers into an array of float (width 4) or double (width 8). Three functions of CPython's stable ABI (3.2 on) are declared
 * here rather than taken from Python.h, so the library builds without Python headers, once for every version;
 * they resolve from the interpreter that loads the library. Only through ctypes.PyDLL, which holds the GIL for the call
 * and raises the error an item set (TypeError for a value that is not a number, OverflowError for an int too large).
 * Returns 0, or -1 with a Python error set.
 */
typedef struct _object PyObject;
extern PyObject* PyList_GetItem(PyObject* list, ssize_t index);
extern double PyFloat_AsDouble(PyObject* number);
extern PyObject* PyErr_Occurred(void);

TD_EXPORT int td_reals_from_list(PyObject* list, void* out, size_t count, int width) {
  for (size_t i = 0; i < count; i++) {
    PyObject* item = PyList_GetItem(list, (ssize_t)i);
    if (!item) return -1;
    double value = PyFloat_AsDouble(item);
    if (value == -1.0 && PyErr_Occurred()) return -1;
    if (width == 8)
      ((double*)out)[i] = value;
    else
      ((float*)out)[i] = (float)value;
  }
  return 0;
}
