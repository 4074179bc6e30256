#!/usr/bin/env bash
# The main job: set up (apt packages, NuGet restore, build), then segment every glyph of the
# shipped specimen sheet with the embedded demo model and score it against the sheet's truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cli() { ./torchsam2 "$@"; }
cli info
demo=weights/glyph-demo
cli glyphs "$demo/specimen.png" --checkpoint "$demo/model.safetensors" --config configs/glyph/sam2_glyph_demo.yaml --out out/demo
cli eval --pred out/demo/glyphs.json --gt "$demo/specimen.annotations.json"
echo "overlay: out/demo/overlay.png"
