# SPDX-License-Identifier: Apache-2.0
"""Finding the Triton installation: the nvidia-pytriton wheel, explicit paths and the environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_dynamo.triton import TritonError, find_installation
from triton_dynamo.triton.locate import ENV_BACKEND_DIRECTORY, ENV_LIBRARY


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LIBRARY, raising=False)
    monkeypatch.delenv(ENV_BACKEND_DIRECTORY, raising=False)


def test_finds_the_wheel() -> None:
    install = find_installation()
    assert install.source == "wheel"
    assert install.library.is_file()
    assert install.library.name.startswith("libtritonserver")
    assert install.dependency_directory is not None and install.dependency_directory.is_dir()
    assert install.library.parent == install.dependency_directory


def test_wheel_backend_directory_has_the_python_backend() -> None:
    backends = find_installation().backend_directory
    stub = backends / "python" / "triton_python_backend_stub"
    assert stub.is_file()
    assert stub.resolve().stat().st_mode & 0o111  # executable
    assert (backends / "python" / "libtriton_python.so").is_file()


def test_wheel_lookup_is_stable() -> None:
    assert find_installation() == find_installation()


def test_explicit_missing_library_raises_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libtritonserver.so"
    with pytest.raises(TritonError) as info:
        find_installation(missing)
    assert info.value.code == TritonError.NOT_FOUND
    assert str(missing) in info.value.message


def test_explicit_library() -> None:
    wheel = find_installation()
    install = find_installation(wheel.library, wheel.backend_directory)
    assert install.source == "explicit"
    assert install.library == wheel.library
    assert install.backend_directory == wheel.backend_directory


def test_explicit_library_without_backends_guesses_a_sibling_folder() -> None:
    wheel = find_installation()
    install = find_installation(wheel.library)
    assert install.backend_directory == wheel.library.parent.parent / "backends"


def test_missing_backend_directory_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(TritonError) as info:
        find_installation(backend_directory=tmp_path / "no-backends")
    assert info.value.code == TritonError.NOT_FOUND
    assert str(tmp_path / "no-backends") in info.value.message


def test_environment_library_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = find_installation()
    monkeypatch.setenv(ENV_LIBRARY, str(wheel.library))
    install = find_installation()
    assert install.source == "environment"
    assert install.library == wheel.library


def test_environment_library_that_does_not_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "libtritonserver-missing.so"
    monkeypatch.setenv(ENV_LIBRARY, str(missing))
    with pytest.raises(TritonError) as info:
        find_installation()
    assert info.value.code == TritonError.NOT_FOUND
    assert str(missing) in info.value.message


def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = find_installation()
    monkeypatch.setenv(ENV_LIBRARY, str(tmp_path / "ignored.so"))
    install = find_installation(wheel.library)
    assert install.source == "explicit"
    assert install.library == wheel.library


def test_environment_backend_directory_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_BACKEND_DIRECTORY, str(tmp_path))
    install = find_installation()
    assert install.source == "wheel"
    assert install.backend_directory == tmp_path
