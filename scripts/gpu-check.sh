#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 18's GPU check: `triton-dynamo up` with 1, 2 and 4 workers serving model_repo_gpu/gpu_matmul on one GPU,
# measured (throughput, p50/p99 at a saturating concurrency, GPU utilization from nvidia-smi, Triton's nv_gpu_* from
# a worker's metrics port) and checked (instance placed on the GPU, model computing with CUDA, answers against numpy).
#
# The GPU machine reaches no registry and takes 64 MiB a call, so the wheels are prepared here and carried there in
# parts (benchmarks/gpu_carry.py); the measuring is benchmarks/gpu_scaling.py. Modes:
#
#   --prepare       here: build .gpu-carry/part-N/ (wheels for Python 3.12, xz, split, sha256 manifest) and print
#                   the device calls to make, back to back
#   --stage         on the device, every call but the last: check the parts carried so far
#   (none)          on the device, the last call: rebuild the wheels, install them into a venv with --no-index (the
#                   device's torch visible after them), check nvidia-smi and torch, measure; results under $OUT
#   --cpu-dry-run   here: the same flow on a machine without a GPU, GPU-only steps skipped, short durations; with
#                   --from-carry it also installs from .gpu-carry as the device does (needs --prepare and a Python 3.12
#                   as --base-python)
#
# Options (defaults for the device run; --cpu-dry-run's in brackets):
#   --workers-list "1 2 4" ["1 2"]   --concurrency-per-worker "8 32" ["2"]   --rows-per-request 128 [2]
#   --duration-s 12 [3]   --warmup-s 3 [1]   --client-processes 4 [1]   --deadline-s 420 [150]
#   --out DIR ($OUT, else .gpu-carry/results/<time>)   --carry-dir DIR (.gpu-carry)
#   --base-python PATH (the Python whose packages, torch among them, the venv sees after its own; python3)
#   --python PATH (a Python that already has the project: no install; dry run default: `uv run python`)
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

mode=gpu
for arg in "$@"; do
  case $arg in
    --prepare) mode=prepare ;;
    --stage) mode=stage ;;
    --cpu-dry-run) mode=cpu-dry-run ;;
  esac
done

from_carry=0
carry_dir=.gpu-carry
out=${OUT:-}
base_python=python3
python=
if [[ $mode == cpu-dry-run ]]; then
  workers_list="1 2" concurrency="2" rows=2 duration_s=3 warmup_s=1 client_processes=1 deadline_s=150
else
  workers_list="1 2 4" concurrency="8 32" rows=128 duration_s=12 warmup_s=3 client_processes=4 deadline_s=420
fi

while (($#)); do
  case $1 in
    --prepare | --stage | --cpu-dry-run) shift && continue ;;
    --from-carry) from_carry=1 && shift && continue ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
  esac
  (($# >= 2)) || die "$1 needs a value (see --help)"
  case $1 in
    --workers-list) workers_list=$2 ;;
    --concurrency-per-worker) concurrency=$2 ;;
    --rows-per-request) rows=$2 ;;
    --duration-s) duration_s=$2 ;;
    --warmup-s) warmup_s=$2 ;;
    --client-processes) client_processes=$2 ;;
    --deadline-s) deadline_s=$2 ;;
    --out) out=$2 ;;
    --carry-dir) carry_dir=$2 ;;
    --base-python) base_python=$2 ;;
    --python) python=$2 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done

if [[ $mode == prepare ]]; then
  command -v uv >/dev/null || die "--prepare needs uv (python3 -m pip install uv)"
  command -v xz >/dev/null || die "--prepare needs xz (Debian package xz-utils)"
  # a pip outside the project's venv (uv makes venvs without one)
  pip="uvx pip"
  if python3 -m pip --version >/dev/null 2>&1; then
    pip="$(command -v python3) -m pip"
  fi
  exec uv run --frozen python benchmarks/gpu_carry.py prepare --carry-dir "$carry_dir" --pip "$pip"
fi

if [[ $mode == stage ]]; then
  "$base_python" benchmarks/gpu_carry.py assemble --stage --carry-dir "$carry_dir"
  # while the machine is here anyway: what the last call will find (seconds, no GPU work)
  nvidia-smi -L || echo "gpu-check: no nvidia-smi here"
  "$base_python" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)' ||
    echo "gpu-check: $base_python has no torch"
  exit 0
fi

out=${out:-$carry_dir/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
exec > >(tee -a "$out/gpu-check.log") 2>&1
echo "gpu-check: $mode, results in $out"
# Workers' request servers on loopback only (gpu_scaling sets it for the stacks too): nothing leaves the machine.
export DYN_TCP_RPC_HOST=127.0.0.1 PYTHONUNBUFFERED=1

if [[ $mode == gpu ]]; then
  command -v nvidia-smi >/dev/null || die "no nvidia-smi: this mode needs an NVIDIA GPU (--cpu-dry-run runs without)"
  nvidia-smi | tee "$out/nvidia-smi.txt"
fi

# The carried wheels, installed without network into a venv that also sees the base Python's packages (torch and its
# CUDA libraries) after its own. A venv, not PYTHONPATH: the python backend stub embeds Python isolated from the
# environment and finds packages only through the venv of the python3 first on PATH. Where the base Python's venv
# module fails, the venv is made by hand (the same three things it makes). Sets py.
install_carried() {
  local work=$1 venv=$1/venv stamp site base_site base_exe
  "$base_python" benchmarks/gpu_carry.py assemble --carry-dir "$carry_dir" --wheels "$work/wheels"
  stamp=$(cat "$work/wheels/.bundle-sha256")
  py=("$venv/bin/python3")
  if [[ -f $venv/.installed && $(cat "$venv/.installed") == "$stamp" ]]; then
    echo "gpu-check: $venv already holds these wheels"
    return
  fi
  rm -rf "$venv"
  if ! "$base_python" -m venv --without-pip "$venv"; then
    echo "gpu-check: $base_python -m venv failed; making the venv by hand"
    rm -rf "$venv"
    base_exe=$("$base_python" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
    mkdir -p "$venv/bin"
    ln -s "$base_exe" "$venv/bin/python3"
    ln -s python3 "$venv/bin/python"
    printf 'home = %s\ninclude-system-site-packages = false\n' "$(dirname "$base_exe")" >"$venv/pyvenv.cfg"
  fi
  site=$("${py[@]}" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  base_site=$("$base_python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  mkdir -p "$site"
  "$base_python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$site" "$work"/wheels/*.whl
  echo "$base_site" >"$site/zz-base-python.pth"
  echo "$stamp" >"$venv/.installed"
  echo "gpu-check: installed $(find "$work/wheels" -name '*.whl' | wc -l) wheels into $site, then $base_site"
}

if [[ -n $python ]]; then
  py=("$python")
elif [[ $mode == gpu || $from_carry == 1 ]]; then
  install_carried "$carry_dir/work"
else
  py=(uv run --frozen python)
fi

"${py[@]}" -c 'import numpy, triton_dynamo, tritonclient.grpc, dynamo.llm; print("gpu-check: project importable")'
if [[ $mode == gpu ]]; then
  "${py[@]}" -c 'import torch; assert torch.cuda.is_available(); print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))' ||
    die "torch with CUDA is not importable from ${py[*]}: the model would run on the CPU (--base-python names the Python that has it)"
fi

read -r -a workers_args <<<"$workers_list"
read -r -a concurrency_args <<<"$concurrency"
status=0
# gpu_scaling keeps to --deadline-s by itself; this bounds it should a stack hang (SIGINT: it still stops its stacks)
grace_s=45
[[ $mode == gpu ]] && grace_s=90
timeout --signal=INT --kill-after=30 "$((deadline_s + grace_s))" "${py[@]}" benchmarks/gpu_scaling.py \
  --mode "$mode" --workers-list "${workers_args[@]}" --concurrency-per-worker "${concurrency_args[@]}" \
  --rows-per-request "$rows" --duration-s "$duration_s" --warmup-s "$warmup_s" \
  --client-processes "$client_processes" --deadline-s "$deadline_s" --out "$out" || status=$?
echo "gpu-check: exit $status; results: $out/gpu_scaling.json, $out/gpu_scaling.md"
exit "$status"
