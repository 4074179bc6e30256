#!/usr/bin/env bash
# Reproduces the embedded glyph demo model in weights/glyph-demo/ from scratch, on the CPU:
# trains the small SAM 2 architecture of configs/glyph/sam2_glyph_demo.yaml on generated specimen
# crops in the training fonts (seeded), then scores it before and after training on sheets set in
# held-out fonts that training never sees. Needs the fonts installed by tools/setup.sh.
#   bash tools/glyph_demo.sh            # about 45 min on 2 cores
#   STEPS_SAMPLES=512 bash tools/glyph_demo.sh   # a quick smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
cli() { ./torchsam2 "$@"; }
out=${OUT:-weights/glyph-demo}
work=${WORK:-/tmp/torchsam2-glyph-demo}
samples=${STEPS_SAMPLES:-4000}     # training crops (one pass, batch 4: 1000 optimizer steps)
threads=${THREADS:-2}
cfg=configs/glyph/sam2_glyph_demo.yaml
mkdir -p "$out" "$work"

# Held-out evaluation sheets: fonts never used for training, three seeds.
for s in 1 2 3; do
  [ -f "$work/heldout_$s/annotations.json" ] || cli specimens "$work/heldout_$s" --count 1 --split heldout --seed "$s" --width 768 --height 768
done

start=$(date +%s)
cli finetune --config "$cfg" --data "glyph-crops:train:$samples:1" --out "$work/run" --epochs 1 --batch-size 4 \
    --val "glyph-crops:heldout:200:2" --lr 1e-3 --warmup 100 --correction-clicks 1 --max-objects 4 --seed 0 \
    --threads "$threads" --save-initial
train_s=$(( $(date +%s) - start ))

# Scores: raw model masks (--no-refine) and the full glyph pipeline, before and after training.
results="["
for w in initial model; do
  for mode in raw refined; do
    flag=""; [ "$mode" = raw ] && flag="--no-refine"
    for s in 1 2 3; do
      sheet="$work/heldout_$s/images/000000.png"
      cli glyphs "$sheet" --checkpoint "$work/run/$w.safetensors" --config "$cfg" $flag --threads "$threads" --out "$work/eval_${w}_${mode}_$s" > /dev/null
      m=$(cli eval --pred "$work/eval_${w}_${mode}_$s/glyphs.json" --gt "$work/heldout_$s/annotations.json" --json)
      results="$results{\"weights\":\"$w\",\"mode\":\"$mode\",\"sheet\":$s,\"metrics\":$m},"
    done
  done
done
results="${results%,}]"
echo "{\"train_seconds\":$train_s,\"samples\":$samples,\"threads\":$threads,\"results\":$results}" > "$out/metrics.json"

cp "$work/run/model.safetensors" "$out/model.safetensors"
cp "$work/heldout_1/images/000000.png" "$out/specimen.png"
cp "$work/heldout_1/annotations.json" "$out/specimen.annotations.json"
echo "trained in ${train_s}s; metrics in $out/metrics.json"
