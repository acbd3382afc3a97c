# SPDX-License-Identifier: Apache-2.0
"""Carrying the project's Python packages to the GPU device, which reaches no registry (scripts/gpu-check.sh).

  prepare   here, with PyPI: the wheels the device's Python (3.12) needs, their contents packed into one xz stream
            and split into parts that each fit one device call, with a manifest of sizes and sha256 sums
  assemble  there: check the carried parts against the manifest, join them and rebuild the wheels (``--stage``:
            only check the parts carried so far)

A device call takes at most 64 MiB (working tree and carried files together), and the `ai-dynamo-runtime` and
`nvidia-pytriton` wheels alone are 130 MB: hence parts, carried in consecutive calls to one warm machine, which keeps
what earlier calls carried (ignored paths stay there between calls).

    uv run python benchmarks/gpu_carry.py prepare          # writes .gpu-carry/part-N/ and prints the calls
    python3 benchmarks/gpu_carry.py assemble --wheels DIR  # on the device
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

logger = logging.getLogger("gpu_carry")

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20

# The device's Python, for choosing wheels and evaluating the lock's markers.
TARGET_PYTHON = "3.12"
TARGET_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "platform_release": "",
    "platform_version": "",
    "extra": "",
}
# pip matches manylinux tags exactly; the device has glibc 2.39.
TARGET_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(5, 40)] + ["manylinux2014_x86_64", "linux_x86_64"]
# Locked runtime packages that none of the processes this check runs imports (up, the frontend, the control service,
# a worker, its python backend stub, the measuring client: seen with PYTHONPROFILEIMPORTTIME on the CPU machine), left
# behind to keep the carry small (39 MB of wheels). The device's Python has the transformers family anyway, and the
# venv sees its packages after ours, so a lazy import there still finds one.
UNUSED_ON_DEVICE = frozenset(
    {
        "transformers",
        "tokenizers",
        "hf-xet",
        "huggingface-hub",
        "safetensors",
        "regex",
        "zstandard",
        "cryptography",
        "kubernetes",
        "locust",
        "pygments",
    }
)
# Files of carried wheels that nothing here uses on the device, left out for the carry's size (14 MB after xz):
# Triton runs in-process (no tritonserver binary, nor libb64, which only it links), and the device's Python is 3.12
# (no stubs for other versions, nor the Python 3.13 library bundled for the 3.13 stub).
TRIM = (
    ("nvidia_pytriton-", r"pytriton/tritonserver/bin/tritonserver"),
    ("nvidia_pytriton-", r"nvidia_pytriton\.libs/libb64-[^/]*"),
    ("nvidia_pytriton-", r"nvidia_pytriton\.libs/libpython3-[0-9a-f]+\.13\.so[^/]*"),
    ("nvidia_pytriton-", r"pytriton/tritonserver/python_backend_stubs/(?!3\.12/)[^/]+/.*"),
)
# The project's wheel holds a C library loaded with ctypes, not a Python extension: any CPython 3 on x86-64 Linux.
PROJECT_WHEEL_TAG = "py3-none-linux_x86_64"
# What one device call may bring (working tree plus carried paths), and room kept for the tree growing meanwhile.
CALL_LIMIT_BYTES = 64 * MIB
TREE_MARGIN_BYTES = 4 * MIB
BUNDLE = "wheels.tar.xz"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def target_requirements(exported: str, excluded: frozenset[str] = UNUSED_ON_DEVICE) -> list[str]:
    """``uv export`` requirements (pinned, with hashes) that apply on the device, markers dropped, ``excluded`` left
    out: one ``name==version --hash=...`` line each, for ``pip download --require-hashes``.
    """
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    lines = []
    for raw in exported.replace("\\\n", " ").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith(("#", "-")):
            continue
        requirement, _, hashes = raw.partition(" --hash=")
        spec, _, marker = requirement.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(TARGET_MARKERS):
            continue
        name = re.split(r"[=<>!~\[ ]", spec.strip(), maxsplit=1)[0]
        if canonicalize_name(name) in excluded:
            continue
        lines.append(" ".join(f"{spec} --hash={hashes}".split()) if hashes else spec.strip())
    return lines


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def retag_wheel(wheel: Path, out_dir: Path, tag: str = PROJECT_WHEEL_TAG) -> Path:
    """A copy of ``wheel`` tagged ``tag`` (file name and WHEEL metadata), with its RECORD rewritten to match."""
    name, version = wheel.name.split("-")[:2]
    target = out_dir / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    record = next(info for info, _ in members if info.filename.endswith(".dist-info/RECORD"))
    rewritten = []
    for info, data in members:
        if info.filename.endswith(".dist-info/WHEEL"):
            kept = [line for line in data.decode().splitlines() if not line.startswith("Tag:")]
            data = ("\n".join([*kept, f"Tag: {tag}"]) + "\n").encode()
        if info is not record:
            rewritten.append((info, data))
    lines = [*(_record_line(info.filename, data) for info, data in rewritten), f"{record.filename},,"]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in [*rewritten, (record, ("\n".join(lines) + "\n").encode())]:
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return target


def trimmed(wheel_name: str, member: str) -> bool:
    """Whether ``member`` of ``wheel_name`` stays behind (see TRIM)."""
    return any(wheel_name.startswith(prefix) and re.fullmatch(pattern, member) for prefix, pattern in TRIM)


def pack_wheels(wheels: list[Path], bundle: Path) -> list[dict]:
    """Every member of every wheel (less TRIM), uncompressed, with its file mode, in one tar under
    ``<wheel file name>/``, compressed with xz.

    Wheels are zip files deflated member by member; xz over their raw contents makes the carry about a third
    smaller than the wheels themselves (ai-dynamo-runtime's 75 MB wheel holds a 226 MB library that xz takes to 47).
    """
    entries = []
    raw = bundle.with_suffix("")  # .tar
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                left = {i.filename for i in infos if trimmed(wheel.name, i.filename)}
                kept = [i for i in infos if i.filename not in left]
                for info in kept:
                    data = zf.read(info)
                    if left and info.filename.endswith(".dist-info/RECORD"):  # no entries for what stayed behind
                        lines = data.decode().splitlines()
                        data = "".join(f"{line}\n" for line in lines if line.split(",")[0] not in left).encode()
                    member = tarfile.TarInfo(f"{wheel.name}/{info.filename}")
                    member.size = len(data)
                    # the zip's Unix mode: the python backend stub, for one, must stay executable
                    member.mode = (info.external_attr >> 16) & 0o7777 or 0o644
                    tar.addfile(member, io.BytesIO(data))
            entries.append(
                {"name": wheel.name, "bytes": wheel.stat().st_size, "members": len(kept), "left_behind": sorted(left)}
            )
    subprocess.run(["xz", "-T0", "-6", "-f", str(raw)], check=True)  # leaves <bundle>.tar.xz
    return entries


def split_file(path: Path, part_bytes: int, directories: list[Path] | None = None) -> list[Path]:
    """``path`` cut into pieces of at most ``part_bytes``; piece i goes into ``directories[i]`` when given."""
    pieces = []
    with open(path, "rb") as f:
        for index in range(1, 10_000):
            data = f.read(part_bytes)
            if not data:
                break
            folder = directories[index - 1] if directories else path.parent
            folder.mkdir(parents=True, exist_ok=True)
            piece = folder / f"{path.name}.{index:03d}"
            piece.write_bytes(data)
            pieces.append(piece)
    return pieces


def tree_bytes(repo: Path) -> int:
    """What a device call sends besides carried paths: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    total = 0
    for name in listed:
        path = repo / name.decode()
        if name and path.is_file():
            total += path.stat().st_size
    return total


def prepare(args: argparse.Namespace) -> int:
    carry = Path(args.carry_dir).resolve()
    for old in [*carry.glob("part-*"), carry / "build"]:  # earlier parts; the device's work folder may stay
        shutil.rmtree(old, ignore_errors=True)
    build = carry / "build"
    wheels = build / "wheels"
    wheels.mkdir(parents=True)
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", "--format", "requirements.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requirements = target_requirements(exported)
    (build / "requirements.txt").write_text("\n".join(requirements) + "\n")
    logger.info("downloading %d wheels for CPython %s on x86-64 Linux", len(requirements), TARGET_PYTHON)
    platforms = [arg for p in TARGET_PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            *shlex.split(args.pip),
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--python-version",
            TARGET_PYTHON,
            "--implementation",
            "cp",
            *("--abi", "cp312", "--abi", "abi3", "--abi", "none"),
            *platforms,
            "--dest",
            str(wheels),
            "--requirement",
            str(build / "requirements.txt"),
        ],
        check=True,
        timeout=1800,
    )
    built = build / "project"
    subprocess.run(["uv", "build", "--wheel", "--out-dir", str(built)], cwd=ROOT, check=True, capture_output=True)
    (project,) = built.glob("triton_dynamo-*.whl")
    retag_wheel(project, wheels)
    found = sorted(wheels.glob("*.whl"))
    if len(found) != len(requirements) + 1:
        raise SystemExit(f"expected {len(requirements) + 1} wheels, found {len(found)} in {wheels}")

    bundle = build / BUNDLE
    logger.info("packing %d wheels (%.0f MiB) with xz", len(found), sum(w.stat().st_size for w in found) / MIB)
    entries = pack_wheels(found, bundle)
    tree = tree_bytes(ROOT)
    budget = args.part_mib * MIB if args.part_mib else CALL_LIMIT_BYTES - tree - TREE_MARGIN_BYTES
    count = math.ceil(bundle.stat().st_size / budget)
    part_bytes = math.ceil(bundle.stat().st_size / count)  # even parts: each call with the same room to spare
    pieces = split_file(bundle, part_bytes, [carry / f"part-{i}" for i in range(1, count + 1)])
    rel = [str(p.relative_to(carry)) for p in pieces]
    calls = [
        {
            "carry": [os.path.relpath(p.parent, ROOT)],
            "command": "bash scripts/gpu-check.sh" if i == len(pieces) else "bash scripts/gpu-check.sh --stage",
        }
        for i, p in enumerate(pieces, start=1)
    ]
    manifest = {
        "format": 1,
        "python": TARGET_PYTHON,
        "bundle": {"name": BUNDLE, "bytes": bundle.stat().st_size, "sha256": sha256_file(bundle)},
        "parts": [
            {"path": r, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for r, p in zip(rel, pieces, strict=True)
        ],
        "wheels": entries,
        "wheel_bytes": sum(e["bytes"] for e in entries),
        "left_behind": {
            "packages": sorted(UNUSED_ON_DEVICE),
            "files": {e["name"]: e["left_behind"] for e in entries if e["left_behind"]},
        },
        "tree_bytes_when_prepared": tree,
        "calls": calls,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    for piece in pieces:  # each call carries one part folder, and each knows the whole set
        (piece.parent / "manifest.json").write_text(text)
    (carry / "manifest.json").write_text(text)
    shutil.rmtree(build)
    packed = manifest["bundle"]["bytes"]
    print(f"{len(found)} wheels, {manifest['wheel_bytes'] / MIB:.1f} MiB; packed {packed / MIB:.1f} MiB")
    print(f"working tree {tree / MIB:.1f} MiB, so {budget / MIB:.1f} MiB a call: {len(pieces)} part(s)")
    print("device calls, back to back (a warm machine keeps the earlier parts; a fresh one needs them again):")
    for i, call in enumerate(calls, start=1):
        print(f"  {i}. carry={json.dumps(call['carry'])} command={call['command']!r}")
    return 0


# --- assemble: the parts back into wheels --------------------------------------------------------------------------


def find_parts(carry: Path) -> tuple[dict, dict[str, Path]]:
    """The manifest (from whichever part folder is present) and the parts present, by manifest path."""
    manifests = [*sorted(carry.glob("part-*/manifest.json")), carry / "manifest.json"]
    manifest_path = next((m for m in manifests if m.is_file()), None)
    if manifest_path is None:
        raise SystemExit(f"no manifest under {carry}: run `bash scripts/gpu-check.sh --prepare` here and carry a part")
    manifest = json.loads(manifest_path.read_text())
    present = {p["path"]: carry / p["path"] for p in manifest["parts"] if (carry / p["path"]).is_file()}
    return manifest, present


def check_parts(carry: Path) -> tuple[dict, list[str]]:
    """Verify every present part's size and sha256; returns the manifest and the parts still missing."""
    manifest, present = find_parts(carry)
    missing = []
    for part in manifest["parts"]:
        path = present.get(part["path"])
        if path is None:
            missing.append(part["path"])
            continue
        if path.stat().st_size != part["bytes"] or sha256_file(path) != part["sha256"]:
            raise SystemExit(f"{path} does not match the manifest (size or sha256): carry it again")
        logger.info("%s: present, sha256 matches", part["path"])
    return manifest, missing


def assemble(args: argparse.Namespace) -> int:
    carry, out = Path(args.carry_dir).resolve(), Path(args.wheels).resolve()
    manifest, missing = check_parts(carry)
    if args.stage or missing:
        have = len(manifest["parts"]) - len(missing)
        print(f"{have} of {len(manifest['parts'])} part(s) here and intact; missing: {', '.join(missing) or 'none'}")
        if missing and not args.stage:
            print(
                f"carry the missing parts first; the calls, in order: {json.dumps(manifest['calls'])}", file=sys.stderr
            )
        return 3 if missing and not args.stage else 0
    stamp = out / ".bundle-sha256"
    if stamp.is_file() and stamp.read_text().strip() == manifest["bundle"]["sha256"]:
        logger.info("wheels already rebuilt from this bundle in %s", out)
        return 0
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    joined = out / manifest["bundle"]["name"]
    with open(joined, "wb") as dst:
        for part in manifest["parts"]:
            with open(carry / part["path"], "rb") as src:
                shutil.copyfileobj(src, dst, MIB)
    if sha256_file(joined) != manifest["bundle"]["sha256"]:
        raise SystemExit("the joined bundle does not match the manifest's sha256")
    counts: dict[str, int] = {}
    current: tuple[str, zipfile.ZipFile] | None = None
    with tarfile.open(joined, "r|xz") as tar:
        for member in tar:
            wheel, _, inner = member.name.partition("/")
            if current is None or current[0] != wheel:
                if current is not None:
                    current[1].close()
                # stored, not deflated: pip reads them once, and deflating 450 MB would cost the device a minute
                current = (wheel, zipfile.ZipFile(out / wheel, "w", zipfile.ZIP_STORED))
            info = zipfile.ZipInfo(inner, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (member.mode & 0o7777) << 16
            current[1].writestr(info, tar.extractfile(member).read())
            counts[wheel] = counts.get(wheel, 0) + 1
    if current is not None:
        current[1].close()
    joined.unlink()
    expected = {e["name"]: e["members"] for e in manifest["wheels"]}
    if counts != expected:
        raise SystemExit(f"rebuilt wheels differ from the manifest: {sorted(set(counts) ^ set(expected))}")
    stamp.write_text(manifest["bundle"]["sha256"] + "\n")
    print(f"rebuilt {len(counts)} wheels in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="build the carried parts (here, with PyPI)")
    p.add_argument("--carry-dir", default=str(ROOT / ".gpu-carry"))
    p.add_argument("--pip", default="python3 -m pip", help="the pip to download with, as a command line")
    p.add_argument("--part-mib", type=int, default=0, help="part size; default: what one call leaves beside the tree")
    a = commands.add_parser("assemble", help="check the carried parts and rebuild the wheels (on the device)")
    a.add_argument("--carry-dir", default=str(ROOT / ".gpu-carry"))
    a.add_argument("--wheels", default=str(ROOT / ".gpu-carry" / "work" / "wheels"))
    a.add_argument("--stage", action="store_true", help="only check the parts present; exit 3 if some are missing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return prepare(args) if args.command == "prepare" else assemble(args)


if __name__ == "__main__":
    sys.exit(main())
