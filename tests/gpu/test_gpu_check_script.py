# SPDX-License-Identifier: Apache-2.0
"""scripts/gpu-check.sh on this machine: its CPU dry run (the device's flow, GPU-only steps skipped) starts real
stacks on model_repo_gpu, checks the model and measures it; and the pieces of carrying wheels to the device, on small
made-up wheels (the real --prepare downloads 150 MB from PyPI and is run by hand)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def load_benchmark(name: str):
    """A module of benchmarks/, which is no package, from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_carry = load_benchmark("gpu_carry")
gpu_scaling = load_benchmark("gpu_scaling")

SCRIPT = REPO_ROOT / "scripts" / "gpu-check.sh"


@pytest.mark.timeout(140)
def test_cpu_dry_run_measures_each_worker_count(tmp_path: Path) -> None:
    """About 30 s here; --deadline-s bounds the script (it stops its stacks by itself by 105 s)."""
    out = tmp_path / "out"
    done = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--cpu-dry-run",
            "--python",
            sys.executable,
            "--workers-list",
            "1 2",
            "--duration-s",
            "2",
            "--warmup-s",
            "1",
            "--client-processes",
            "2",  # the device's way: clients in processes of their own
            "--deadline-s",
            "60",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=130,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((out / "gpu_scaling.json").read_text())
    assert results["mode"] == "cpu-dry-run" and results["passed"]
    assert sorted({run["workers"] for run in results["runs"]}) == [1, 2]
    for run in results["runs"]:
        assert run["throughput_rps"] > 0 and run["errors"] == 0 and run["p50_ms"] <= run["p99_ms"]
        assert run["worker0"]["mean_batch_rows"] >= run["rows_per_request"]  # Triton's counters were read
        assert run["nvidia_smi"] is None  # GPU-only steps skipped
    checks = {(c["check"], c["workers"]): c["passed"] for c in results["checks"]}
    for workers in (1, 2):
        assert checks[("outputs match numpy", workers)] and checks[("instance kind", workers)]
        assert checks[("model computes on", workers)]
    table = (out / "gpu_scaling.md").read_text()
    assert "| workers | concurrency | req/s" in table and "| outputs match numpy | 2 | yes |" in table
    assert (out / "stack-logs.tar.gz").stat().st_size > 0


def test_output_memory_copy_changes_only_that_parameter(tmp_path: Path) -> None:
    copy = gpu_scaling.with_output_memory(REPO_ROOT / "model_repo_gpu", "cpu", tmp_path)
    original = (REPO_ROOT / "model_repo_gpu" / "gpu_matmul" / "config.pbtxt").read_text()
    changed = (copy / "gpu_matmul" / "config.pbtxt").read_text()
    assert 'key: "OUTPUT_MEMORY" value: { string_value: "gpu" }' in original
    assert changed == original.replace('string_value: "gpu" }', 'string_value: "cpu" }')
    assert (copy / "gpu_matmul" / "1" / "model.py").read_bytes() == (
        REPO_ROOT / "model_repo_gpu" / "gpu_matmul" / "1" / "model.py"
    ).read_bytes()


def test_script_refuses_unknown_options() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--no-such-option", "1"], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "unknown option --no-such-option" in done.stderr


# --- carrying wheels ---------------------------------------------------------------------------------------------


def make_wheel(
    directory: Path, name: str, files: dict[str, bytes], tag: str = "cp311-cp311-linux_x86_64", executable=()
) -> Path:
    """A minimal wheel with a correct RECORD; members named in ``executable`` get mode 0755."""
    info = f"{name}-1.0.dist-info"
    members = {**files, f"{info}/METADATA": f"Name: {name}\nVersion: 1.0\n".encode()}
    members[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    record = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for n, d in members.items()
    ]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{name}-1.0-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            info = zipfile.ZipInfo(member)
            info.external_attr = (0o755 if member in executable else 0o644) << 16
            zf.writestr(info, data)
    return path


def test_requirements_for_the_device() -> None:
    exported = (
        "numpy==1.26.4 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "exceptiongroup==1.3.2 ; python_full_version < '3.11' \\\n    --hash=sha256:cc\n"
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:dd\n"
        "transformers==5.24.0 \\\n    --hash=sha256:ee\n"
        "anyio==4.16.0 ; sys_platform != 'emscripten' \\\n    --hash=sha256:ff\n"
    )
    assert gpu_carry.target_requirements(exported) == [
        "numpy==1.26.4 --hash=sha256:aa --hash=sha256:bb",
        "anyio==4.16.0 --hash=sha256:ff",
    ]


def test_retagged_wheel_keeps_its_files_and_a_true_record(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", {"pkg/__init__.py": b"x = 1\n", "pkg/_lib.so": b"\x7fELF" + bytes(100)})
    (tmp_path / "out").mkdir()
    retagged = gpu_carry.retag_wheel(wheel, tmp_path / "out")
    assert retagged.name == "pkg-1.0-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(retagged) as zf:
        assert "Tag: py3-none-linux_x86_64" in zf.read("pkg-1.0.dist-info/WHEEL").decode()
        assert zf.read("pkg/_lib.so") == b"\x7fELF" + bytes(100)
        for line in zf.read("pkg-1.0.dist-info/RECORD").decode().splitlines():
            name, digest, size = line.split(",")
            if digest:
                data = zf.read(name)
                assert int(size) == len(data)
                assert (
                    digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                )


def test_parts_carried_in_two_calls_rebuild_the_wheels(tmp_path: Path) -> None:
    """pack, split into parts, lose one (a call not made yet), then assemble: the same wheel contents come back, with
    their modes, less what TRIM leaves behind."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    payload = random.Random(18).randbytes(300_000)  # incompressible, so that the bundle spans parts
    stubs = "pytriton/tritonserver/python_backend_stubs"
    triton_files = {
        f"{stubs}/3.12/triton_python_backend_stub": b"stub 3.12",
        f"{stubs}/3.11/triton_python_backend_stub": b"stub 3.11",
        "pytriton/tritonserver/bin/tritonserver": b"server",
        "pytriton/__init__.py": b"",
    }
    made = [
        make_wheel(
            wheels, "alpha", {"alpha/data.bin": payload, "alpha/tool": b"#!/bin/sh\n"}, executable={"alpha/tool"}
        ),
        make_wheel(wheels, "nvidia_pytriton", triton_files, executable={f"{stubs}/3.12/triton_python_backend_stub"}),
    ]
    carry = tmp_path / "carry"
    bundle = tmp_path / gpu_carry.BUNDLE
    entries = gpu_carry.pack_wheels(made, bundle)
    pieces = gpu_carry.split_file(bundle, 64 * 1024, [carry / f"part-{i}" for i in range(1, 100)])
    assert len(pieces) >= 2
    manifest = {
        "bundle": {"name": gpu_carry.BUNDLE, "bytes": bundle.stat().st_size, "sha256": gpu_carry.sha256_file(bundle)},
        "parts": [
            {"path": str(p.relative_to(carry)), "bytes": p.stat().st_size, "sha256": gpu_carry.sha256_file(p)}
            for p in pieces
        ],
        "wheels": entries,
        "calls": [],
    }
    for piece in pieces:
        (piece.parent / "manifest.json").write_text(json.dumps(manifest))
    held_back = pieces[-1].read_bytes()
    pieces[-1].unlink()

    out = tmp_path / "rebuilt"
    assert gpu_carry.main(["assemble", "--stage", "--carry-dir", str(carry), "--wheels", str(out)]) == 0
    assert gpu_carry.main(["assemble", "--carry-dir", str(carry), "--wheels", str(out)]) == 3
    pieces[-1].write_bytes(held_back)
    assert gpu_carry.main(["assemble", "--carry-dir", str(carry), "--wheels", str(out)]) == 0

    left = {"pytriton/tritonserver/bin/tritonserver", f"{stubs}/3.11/triton_python_backend_stub"}
    for original in made:
        with zipfile.ZipFile(original) as a, zipfile.ZipFile(out / original.name) as b:
            assert sorted(b.namelist()) == sorted(set(a.namelist()) - left)
            for name in b.namelist():
                assert b.getinfo(name).external_attr >> 16 == a.getinfo(name).external_attr >> 16
                if not name.endswith("RECORD"):
                    assert a.read(name) == b.read(name)
            recorded = {
                line.split(",")[0]
                for line in b.read(next(n for n in b.namelist() if n.endswith("RECORD"))).decode().splitlines()
            }
            assert recorded == set(b.namelist())

    pieces[0].write_bytes(b"damaged")
    with pytest.raises(SystemExit, match="does not match the manifest"):
        gpu_carry.main(["assemble", "--carry-dir", str(carry), "--wheels", str(tmp_path / "again")])
