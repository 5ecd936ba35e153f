#!/usr/bin/env bash
# Create .venv with PyTorch, torchvision and edgeprune (editable) plus test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch and torchvision pinned together (a torchvision that matches the torch build)
python -c "import torch, torchvision" >/dev/null 2>&1 || pip install -q "torch==2.14.1" "torchvision==0.29.1"
pip install -q -e ".[test]"
# Debian's chromium renders the fit report in a headless test (skipped without it)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1) \
    || echo "note: could not install chromium; the report-rendering test will be skipped"
fi
# Debian's Arm toolchain and QEMU: the generated C is run on emulated Cortex-M cores in the tests
if ! { command -v arm-none-eabi-gcc && command -v qemu-system-arm; } >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  arm="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $arm >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $arm >/dev/null 2>&1) \
    || echo "note: could not install the Arm toolchain or QEMU; the emulated Cortex-M tests will be skipped"
fi
python -c "import edgeprune, torch; print('edgeprune', edgeprune.__version__, 'torch', torch.__version__)"
