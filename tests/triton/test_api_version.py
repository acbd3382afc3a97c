# SPDX-License-Identifier: Apache-2.0
"""An older libtritonserver is refused with the version it speaks and the one the binding needs, before any of the
newer functions is looked up (a stand-in library exporting only what each case needs: the refusal is pure logic
over what the library says; every other test runs the real Triton)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from triton_dynamo.triton._build_shim import compile_shim
from triton_dynamo.triton._capi import _ERROR_RETURNING, REQUIRED_API_MAJOR, REQUIRED_API_MINOR, CApi
from triton_dynamo.triton.errors import TritonError

SOURCE = """
#include <stdint.h>
#include <stddef.h>
__attribute__((visibility("default"))) void *TRITONSERVER_ApiVersion(uint32_t *major, uint32_t *minor) {
  *major = %d;
  *minor = %d;
  return NULL;
}
"""


def old_library(tmp_path: Path, major: int, minor: int) -> ctypes.CDLL:
    source = tmp_path / "libtritonserver_old.c"
    source.write_text(SOURCE % (major, minor))
    output = compile_shim(tmp_path / "libtritonserver_old.so", source=source)
    return ctypes.CDLL(str(output), mode=ctypes.RTLD_GLOBAL)


@pytest.mark.parametrize(
    "major, minor", [(REQUIRED_API_MAJOR, REQUIRED_API_MINOR - 1), (REQUIRED_API_MAJOR, 17), (2, 40)]
)
def test_an_older_or_other_major_api_is_refused_by_version(tmp_path: Path, major: int, minor: int) -> None:
    with pytest.raises(TritonError) as caught:
        CApi(old_library(tmp_path, major, minor))
    assert caught.value.code == TritonError.UNSUPPORTED
    assert f"speaks C API {major}.{minor}" in str(caught.value)
    assert f"needs {REQUIRED_API_MAJOR}.{REQUIRED_API_MINOR}" in str(caught.value)


def test_a_library_missing_a_function_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TritonError) as caught:
        CApi(old_library(tmp_path, REQUIRED_API_MAJOR, REQUIRED_API_MINOR))
    assert caught.value.code == TritonError.UNSUPPORTED
    first = next(name for name in _ERROR_RETURNING if name != "ApiVersion")
    assert f"has no TRITONSERVER_{first}" in str(caught.value)
