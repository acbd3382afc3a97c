# SPDX-License-Identifier: Apache-2.0
"""Finding a Triton installation and loading its library into this process.

Order: an explicit path (argument, or ``TRITON_DYNAMO_TRITON_LIBRARY`` / ``TRITON_DYNAMO_BACKEND_DIRECTORY``), then
NVIDIA's Triton container layout under ``/opt/tritonserver``, then the Triton inside the ``nvidia-pytriton`` wheel.

The wheel's ``libtritonserver`` finds its direct dependencies through its RUNPATH, but some of those (libcurl, and the
python backend's libarchive) carry no search path of their own, so a plain ``dlopen`` fails unless
``LD_LIBRARY_PATH`` was set before the process started. Rather than ask users for that, :func:`load_library` preloads
exactly the missing dependencies from the wheel's library folder, as the loader reports them, with ``RTLD_GLOBAL``;
the loader then matches them by soname. Child processes (the python backend's stub) get the variables they need in
the environment (:func:`prepare_child_environment`).

Example:
    >>> install = find_installation()          # doctest: +SKIP
    >>> install.source, install.library.name   # doctest: +SKIP
    ('wheel', 'libtritonserver-717102f0.so')
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .errors import TritonError

logger = logging.getLogger(__name__)

ENV_LIBRARY = "TRITON_DYNAMO_TRITON_LIBRARY"
ENV_BACKEND_DIRECTORY = "TRITON_DYNAMO_BACKEND_DIRECTORY"
CONTAINER_HOME = Path("/opt/tritonserver")

_MISSING = re.compile(r"(lib[^\s:/]+\.so[^\s:]*): cannot open shared object file")


@dataclass(frozen=True)
class TritonInstall:
    """Where a Triton installation's parts are.

    Attributes:
        library: path of ``libtritonserver.so``.
        backend_directory: the folder holding one sub-folder per backend.
        repoagent_directory: the repository-agent folder, where the installation has one.
        dependency_directory: a folder of private shared libraries to preload (the wheel's), else None.
        source: how it was found: ``explicit``, ``environment``, ``container`` or ``wheel``.
    """

    library: Path
    backend_directory: Path
    repoagent_directory: Path | None = None
    dependency_directory: Path | None = None
    source: str = "explicit"


def find_installation(
    library: str | os.PathLike | None = None, backend_directory: str | os.PathLike | None = None
) -> TritonInstall:
    """Find Triton: explicit arguments, then environment variables, then ``/opt/tritonserver``, then the wheel.

    A backend directory given without a library (or the reverse) is combined with whatever the search finds for the
    other part. Raises :class:`TritonError` naming every place looked at when no Triton is found.
    """
    source = "explicit"
    if library is None and os.environ.get(ENV_LIBRARY):
        library, source = os.environ[ENV_LIBRARY], "environment"
    if backend_directory is None and os.environ.get(ENV_BACKEND_DIRECTORY):
        backend_directory = os.environ[ENV_BACKEND_DIRECTORY]

    found: TritonInstall | None = None
    if library is None:
        found = _container_install() or _wheel_install()
        if found is None:
            raise TritonError(
                f"no Triton library found: set {ENV_LIBRARY} to a libtritonserver.so, use NVIDIA's Triton container "
                f"({CONTAINER_HOME}/lib/libtritonserver.so), or install the nvidia-pytriton wheel",
                code=TritonError.NOT_FOUND,
            )
    else:
        lib_path = Path(library)
        if not lib_path.is_file():
            raise TritonError(f"Triton library {str(lib_path)!r} does not exist", code=TritonError.NOT_FOUND)
        found = TritonInstall(library=lib_path, backend_directory=lib_path.parent.parent / "backends", source=source)

    if backend_directory is not None:
        backends = Path(backend_directory)
        if not backends.is_dir():
            raise TritonError(f"backend directory {str(backends)!r} does not exist", code=TritonError.NOT_FOUND)
        found = TritonInstall(
            found.library, backends, found.repoagent_directory, found.dependency_directory, found.source
        )
    return found


def _container_install() -> TritonInstall | None:
    library = CONTAINER_HOME / "lib" / "libtritonserver.so"
    if not library.is_file():
        return None
    agents = CONTAINER_HOME / "repoagents"
    return TritonInstall(library, CONTAINER_HOME / "backends", agents if agents.is_dir() else None, None, "container")


def _wheel_install() -> TritonInstall | None:
    try:
        import pytriton  # the nvidia-pytriton wheel; imported only to find its files
    except ImportError:
        return None
    package = Path(pytriton.__file__).parent
    libs = package.parent / "nvidia_pytriton.libs"
    candidates = sorted(libs.glob("libtritonserver*.so*"))
    if not candidates:
        return None
    backends = _wheel_backend_directory(package / "tritonserver")
    return TritonInstall(candidates[0], backends, None, libs, "wheel")


def _wheel_backend_directory(home: Path) -> Path:
    """A backend folder for the wheel's Triton with the python backend stub of the running Python in place.

    The wheel ships one stub per Python version beside the backend rather than in it. The folder is built of
    symbolic links under the user's cache (site-packages may be read-only), named by a hash of the wheel's path so
    that several environments do not clash.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    python_backend = home / "backends" / "python"
    if not stub.is_file():
        logger.warning(
            "the nvidia-pytriton wheel has no python backend stub for Python %s; python models will not load", version
        )
        return home / "backends"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "triton-dynamo"
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
    root = cache / f"backends-{version}-{digest}"
    target = root / "python"
    links = {target / p.name: p for p in python_backend.iterdir()}
    links[target / "triton_python_backend_stub"] = stub
    links.update({root / p.name: p for p in (home / "backends").iterdir() if p.name != "python"})
    target.mkdir(parents=True, exist_ok=True)
    for link, source in links.items():
        if link.is_symlink() and Path(os.readlink(link)) == source:
            continue
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)  # atomic, so concurrent workers never see a half-made folder
    return root


_loaded: dict[Path, ctypes.CDLL] = {}


def load_library(install: TritonInstall) -> ctypes.CDLL:
    """``dlopen`` the installation's library (once per process), preloading private dependencies as needed."""
    library = install.library.resolve()
    if library in _loaded:
        return _loaded[library]
    if install.dependency_directory is not None:
        # The python backend is loaded later by Triton itself; its missing dependencies must be in place first.
        python_backend = install.backend_directory / "python" / "libtriton_python.so"
        preload = [library, python_backend] if python_backend.exists() else [library]
        for path in preload:
            _dlopen_with_dependencies(path, install.dependency_directory)
    lib = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    _loaded[library] = lib
    logger.debug("loaded %s (%s)", library, install.source)
    return lib


def _dlopen_with_dependencies(path: Path, dependency_directory: Path, depth: int = 0) -> None:
    """Open ``path``; whenever the loader names a missing library, open it from ``dependency_directory`` first."""
    if depth > 64:
        raise TritonError(f"gave up resolving the dependencies of {path}", code=TritonError.INTERNAL)
    while True:
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return
        except OSError as exc:
            match = _MISSING.search(str(exc))
            candidate = dependency_directory / match.group(1) if match else None
            if candidate is None or not candidate.exists() or candidate == path:
                raise TritonError(f"cannot load {path}: {exc}", code=TritonError.NOT_FOUND) from exc
            _dlopen_with_dependencies(candidate, dependency_directory, depth + 1)


def has_nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA driver loaded (without initialising CUDA)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def prepare_child_environment(install: TritonInstall) -> None:
    """Set what processes Triton starts (the python backend stub) need to find their libraries and packages.

    The stub links ``libpython3.X.so``: this interpreter's own shared library comes first so that the stub embeds
    the same Python. It finds this environment's packages (numpy) through the ``python3`` first on ``PATH``.
    """
    paths = []
    if install.dependency_directory is not None:
        paths.append(str(install.dependency_directory))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        paths.append(libdir)
    _prepend("LD_LIBRARY_PATH", paths)
    _prepend("PATH", [str(Path(sys.executable).parent)])


def _prepend(variable: str, entries: list[str]) -> None:
    current = [p for p in os.environ.get(variable, "").split(os.pathsep) if p]
    new = [e for e in entries if e not in current]
    if new:
        os.environ[variable] = os.pathsep.join(new + current)
