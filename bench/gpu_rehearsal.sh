#!/usr/bin/env bash
# A rehearsal of the GPU check, here on the CPU, in a stand-in for the GPU machine's image: Python 3.12 with the
# image's packages (bench/gpu_image_packages.txt, less the CUDA-only and unrelated heavy ones) at the versions it is
# known to hold (bench/gpu_image_constraints.txt: torch 2.11, numpy 2.5, ...), nothing of this project's venv, and
# only the wheels bench/gpu.sh carries. It runs every section of bench/gpu_check.py at its toy size (--quick) the
# way bench/gpu.sh runs them there, so that a version or a missing package fails here, not in the GPU's 15 minutes.
#   bash bench/gpu_rehearsal.sh          # about 5 GB of downloads the first time (PyPI's torch is a CUDA build)
# Not part of `make test`: the suite's tests/test_bench.py runs the same sections in the project's own venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REHEARSAL_VENV:-.maskops/gpu-image-venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python="${PYTHON312:-python3.12}"
if ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  python="$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)"
  [ -n "$python" ] || { echo "gpu_rehearsal: no Python 3.12 (the GPU image's); set PYTHON312=/path/to/python3.12" >&2; exit 2; }
fi
[ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_rehearsal: no .whl/ yet: run bash bench/gpu_wheels.sh first" >&2; exit 2; }
[ -f .maskops/models/u2netp.onnx ] || { echo "gpu_rehearsal: no .maskops/models/u2netp.onnx: run bash bench/gpu_wheels.sh first" >&2; exit 2; }

# The image's packages, less the CUDA-only ones (they do nothing on this CPU) and heavy ones no maskops code imports.
skip='^(jax|cupy|cuda-|nvidia-|numba-cuda|mpi4py|triton|torch-geometric|torchaudio|tensorstore|orbax|flax|chex|optax|diffrax|equinox|lineax|optimistix|numpyro|e3nn|botorch|gpytorch|linear-operator|transformers|sentence-transformers|peft|accelerate|lightning|pytorch-lightning|tensorboard|cmake|meson|ninja|scikit-build|nanobind|pybind11|cython|pip$|setuptools$|wheel$)'
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  grep -v '^#' bench/gpu_image_packages.txt | grep -vE "$skip" > "$work/packages.txt"
  PIP_CONSTRAINT="$PWD/bench/gpu_image_constraints.txt" "$venv/bin/python" -m pip install --quiet -r "$work/packages.txt"
  touch "$venv/.complete"
fi
"$venv/bin/python" -c 'import torch, numpy; print(f"stand-in image: Python 3.12, torch {torch.__version__}, numpy {numpy.__version__}")'

# As bench/gpu.sh does there: the carried wheels apart from the image's packages, the repository on the path.
"$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl
run() {
  env -i PATH="$PWD/$venv/bin:/usr/bin:/bin" HOME="$work" MASKOPS_HOME="$work/home" PYTHONPATH="$work/site:$PWD" PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 python3 bench/gpu_check.py --quick --device cpu --model-file .maskops/models/u2netp.onnx --work "$work/fullsize" "$@"
}
run --sections paths,training,crop --out "$work/device.json"
run --sections fullsize-data,fullsize-train,study --out "$work/fullsize.json"
"$venv/bin/python" - "$work/device.json" "$work/fullsize.json" <<'EOF'
import json, sys
failed = {}
for path in sys.argv[1:]:
    report = json.load(open(path))
    failed |= {k: v["error"].strip().splitlines()[-1] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    sections = [k for k, v in report.items() if isinstance(v, dict)]
    print(f"{path.rsplit('/', 1)[-1]}: torch {report['torch']}, Python {report['python']}: sections {', '.join(sections)}")
if failed:
    sys.exit("gpu_rehearsal: FAILED " + json.dumps(failed, indent=1))
print("gpu_rehearsal: every section ran in the stand-in image")
EOF
