#!/usr/bin/env bash
# One prepared GPU check, for a Linux machine with an NVIDIA GPU and the .NET 10 SDK: builds the CLI against
# TorchSharp's CUDA packages (-p:TorchBackend=cuda-linux, a package switch, no code change) into its own
# artifacts folder, then runs `info`, every parity case on the GPU, and the benchmark on the GPU.
# This workplace's NuGet mirror does not serve TorchSharp-cuda-linux, so it cannot run here.
#
#   bash tools/cuda_check.sh [OUTDIR]      # default out/cuda; PARITY=path/to/parity cases
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/cuda}"
parity="${PARITY:-${TORCHSAM2_PARITY_DIR:-../shared/parity}}"
mkdir -p "$out"
dotnet build src/TorchSam2.Cli/TorchSam2.Cli.csproj -c Release -p:TorchBackend=cuda-linux \
  --artifacts-path "$out/artifacts" -nologo -v:q
cli() { dotnet "$out/artifacts/bin/TorchSam2.Cli/release/TorchSam2.Cli.dll" "$@"; }
cli info | tee "$out/info.txt"
status=0
cli parity --device cuda "$parity" | tee "$out/parity.txt" || status=$?
w="$parity/tiny_full_image/weights.safetensors"
if [ -f "$w" ]; then
  cli bench --device cuda --config configs/sam2.1/sam2.1_hiera_t.yaml --checkpoint "$w" --repeats 10 --json \
    | tee "$out/bench_1024.json"
  cli bench --device cuda --config configs/sam2.1/sam2.1_hiera_t.yaml --checkpoint "$w" --repeats 5 \
    --image-size 1024 --video-frames 12 --json | tee "$out/bench_video_1024.json"
fi
echo "cuda_check: results in $out (parity exit code $status)"
exit "$status"
