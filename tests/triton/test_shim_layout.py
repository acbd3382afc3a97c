# SPDX-License-Identifier: Apache-2.0
"""The shim's structs and the binding's ctypes declarations of them are checked against each other when the shim
loads, and a missing shim is named as an installation fault (nothing is compiled at run time)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from triton_dynamo.triton import _build_shim
from triton_dynamo.triton import _capi as C
from triton_dynamo.triton.errors import TritonError


def test_the_installed_shim_agrees_with_the_declarations() -> None:
    C.check_layouts(ctypes.CDLL(str(C.shim_path())))


def layout_library(tmp_path: Path, event_flags_offset: int) -> ctypes.CDLL:
    """A library with the real tables but td_event's last offset replaced (what an edit of one side only does)."""
    real = ctypes.CDLL(str(C.shim_path()))
    lines = ["#include <stdint.h>"]
    for struct, symbol in C._LAYOUTS.items():
        values = list((ctypes.c_uint64 * (len(struct._fields_) + 1)).in_dll(real, symbol))
        if symbol == "td_layout_event":
            values[-1] = event_flags_offset
        numbers = ", ".join(str(v) for v in values)
        lines.append(f'__attribute__((visibility("default"))) const uint64_t {symbol}[] = {{{numbers}}};')
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "layouts.c"
    source.write_text("\n".join(lines) + "\n")
    return ctypes.CDLL(str(_build_shim.compile_shim(tmp_path / "layouts.so", source=source)))


def test_a_struct_laid_out_differently_is_refused_by_name(tmp_path: Path) -> None:
    C.check_layouts(layout_library(tmp_path / "same", C.Event.flags.offset))  # the same numbers pass
    with pytest.raises(TritonError) as caught:
        C.check_layouts(layout_library(tmp_path / "moved", C.Event.flags.offset + 4))
    assert "event: the shim lays it out as" in str(caught.value)
    assert caught.value.code == TritonError.INTERNAL


def test_a_missing_shim_is_an_installation_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_build_shim, "LIBRARY_NAME", "_tdshim-not-built.so")
    with pytest.raises(TritonError) as caught:
        C.shim_path()
    assert "are missing" in str(caught.value) and "Reinstall" in str(caught.value)
