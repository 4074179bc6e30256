#!/usr/bin/env bash
# Runs `torchsam2 bench` and the official PyTorch code (tools/pytorch/bench.py) with the same arguments,
# interleaved (C#, PyTorch, then PyTorch, C#, ...) so that drift on a shared machine hits both sides alike,
# and writes one JSON per run into OUTDIR. Then: python3 tools/pytorch/bench_table.py OUTDIR
#
#   SAM2_DIR=/path/to/sam2 ROUNDS=2 bash tools/bench_side_by_side.sh OUTDIR --threads 2 --repeats 5
#
# SAM2_DIR: a checkout of facebookresearch/sam2 (its sam2/ and training/ packages); PYTHON: an
# interpreter with torch (default /usr/bin/python3, Debian's python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: tools/bench_side_by_side.sh OUTDIR [bench arguments]}"
shift
: "${SAM2_DIR:?set SAM2_DIR to a checkout of facebookresearch/sam2}"
python="${PYTHON:-/usr/bin/python3}"
rounds="${ROUNDS:-2}"
mkdir -p "$out"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(cs py); else order=(py cs); fi
  for side in "${order[@]}"; do
    echo "bench: round $r, $side" >&2
    if [ "$side" = cs ]; then
      ./torchsam2 bench --json "$@" > "$out/cs_round$r.json"
    else
      PYTHONPATH="$SAM2_DIR${PYTHONPATH:+:$PYTHONPATH}" "$python" tools/pytorch/bench.py --json "$@" > "$out/py_round$r.json" 2> "$out/py_round$r.log"
    fi
  done
done
echo "bench: wrote $out" >&2
