#!/usr/bin/env bash
# Installs what TorchSam2 needs on Debian (libtorch, an optimized BLAS, OpenCV, fonts, CMake)
# and builds the solution, native shim included. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libtorch-dev libopenblas0-openmp libopencv-imgcodecs-dev libopencv-videoio-dev libopencv-imgproc-dev
          cmake g++ make libfreetype6
          # fonts for the glyph specimens (train and held-out faces)
          fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf fonts-urw-base35)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET 10 SDK is required (https://dot.net); install it and run again" >&2
  exit 1
fi

config="${CONFIGURATION:-Release}"
dotnet build TorchSam2.sln -c "$config" -nologo -v:q
