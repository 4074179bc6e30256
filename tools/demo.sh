#!/usr/bin/env bash
# The main job: set up (apt packages, native shim, solution) and run the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cli() { ./torchsam2 "$@"; }
cli info
if [ -d ../shared/parity ]; then
  # Replays the PyTorch reference cases: every output tensor is compared with its tolerance.
  cli parity ../shared/parity/micro_image ../shared/parity/micro_modules || true
fi
cli --help
