#!/usr/bin/env bash
# Prepare what the GPU check carries to the GPU machine, in .gpu_carry/ (git-ignored):
#   wheels/   transformers 4 + adapters + the huggingface_hub and tokenizers they pin, for
#             Python 3.12 (the GPU machine has transformers 5, which `adapters` does not
#             support; only the adapter measurements run under these, in a child process)
#   minilm/   the bundled all-MiniLM-L6-v2, weights in fp16
# The versions are this checkout's own (.venv), so what the tests here ran is what travels.
# Then checks that the code plus the carry fit the 64 MiB a device call may take.
#
#   bash benchmarks/gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CARRY=.gpu_carry
rm -rf "$CARRY"
mkdir -p "$CARRY/wheels"
versions=$($PY - <<'PYEOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("transformers", "adapters", "huggingface_hub",
                                                 "tokenizers")))
PYEOF
)
echo "wheels: $versions"
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CARRY/wheels" $versions
$PY benchmarks/gpucheck/carry.py --out "$CARRY"
code=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb "$CARRY" | cut -f1)
total=$((code + carry))
echo "code $((code / 1024)) KiB + carry $((carry / 1024)) KiB = $((total / 1048576)) MiB of 64"
if [ "$total" -gt $((64 * 1048576)) ]; then
    echo "too large for one device call" >&2
    exit 1
fi
