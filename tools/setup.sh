#!/usr/bin/env bash
# Installs what TorchSam2 still needs from Debian and builds the solution. libtorch 2.10 comes from NuGet
# (TorchSharp + libtorch-cpu-linux-x64), OpenCV from OpenCvSharp4's runtime package and text rendering from
# SkiaSharp + HarfBuzz: no compiler, CMake or -dev package. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libgtk-3-0          # OpenCvSharp4's native library links against GTK 3
          libfontconfig1      # SkiaSharp's native library
          chromium            # the browser tests of torchsam2 serve (Playwright drives it; no browser download)
          # fonts for the glyph specimens (train and held-out faces)
          fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-lato fonts-roboto-unhinted)
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
# TorchBackend=cpu-linux-x64 by default; -p:TorchBackend=cuda-linux switches packages (README, CUDA).
dotnet build TorchSam2.sln -c "$config" -nologo -v:q ${TORCHSAM2_BUILD_ARGS:-}
