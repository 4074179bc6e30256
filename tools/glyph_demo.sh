#!/usr/bin/env bash
# Reproduces the embedded glyph demo models in weights/glyph-demo/ from scratch, on the CPU: the SAM 2 model in two
# stages, then the glyph-centre net of --split-method centres:
#   1. the small SAM 2 architecture of configs/glyph/sam2_glyph_demo.yaml trained from random weights on crops of
#      classic specimen sheets (open spacing) in the training fonts: 4000 crops, about 30 min on 2 cores;
#   2. fine-tuned on crops of tight sheets (letters that touch, italics, tight leading, ligatures, 8-120 px;
#      SpecimenOptions.Tight, tighter than the benchmark's Crowded) so that a click on a glyph answers with that glyph
#      alone: 3600 crops, about 20 min;
#   3. the glyph-centre net (train-centres): a 0.25 M-parameter U-Net trained from random weights on 192-px crops of
#      generated sheets (tight, crowded and classic layouts, training fonts), 8 crops a step, about 1 s a step, in the
#      six sittings the shipped weights had: 1600 steps at lr 2e-3; 500 steps of a 3000-step schedule at lr 1e-3;
#      2500 steps at lr 1e-3 with the foreground head added (off in glyphs by default); 2000 steps at lr 1e-3 on
#      sheets read through the deblurring ink step, tight and crowded lines condensed or extended 0.6-1.1x; 1200 steps
#      at lr 7e-4 with crowded sheets shaped without ligatures added (overlapping ff, fi as separate letters); 1000
#      steps at lr 5e-4 with small (8-24 px) crowded sheets added: about 160 min.
# It then scores the stage-1 and stage-2 models with the full glyph pipeline on crowded sheets set in held-out fonts
# (which training never sees), with and without splitting. Needs the fonts installed by tools/setup.sh.
#   bash tools/glyph_demo.sh                          # about 3 h 30 min on 2 cores
#   STAGE1=path/to/stage1.safetensors bash tools/glyph_demo.sh   # stage 2 only, from given stage-1 weights
#   STEPS_SAMPLES=64 STAGE2_SAMPLES=64 bash tools/glyph_demo.sh   # a quick smoke run
#   STAGE1=a.safetensors STAGE2=b.safetensors CENTRES=c.safetensors EVAL_ONLY=1 bash tools/glyph_demo.sh   # only the scores (metrics.json)
set -euo pipefail
cd "$(dirname "$0")/.."
cli() { ${CLI:-./torchsam2} "$@"; }   # CLI="dotnet path/TorchSam2.Cli.dll" runs a copy while the tree is rebuilt
out=${OUT:-weights/glyph-demo}
work=${WORK:-/tmp/torchsam2-glyph-demo}
samples=${STEPS_SAMPLES:-4000}     # stage 1: one pass, batch 4: 1000 optimizer steps
samples2=${STAGE2_SAMPLES:-1200}   # stage 2: per epoch, 3 epochs, batch 4: 900 optimizer steps
centre_steps=${CENTRE_STEPS:-1600}  # stage 3: the glyph-centre net's first sitting (then 500, 2500 and 2000 more)
threads=${THREADS:-2}
cfg=configs/glyph/sam2_glyph_demo.yaml
mkdir -p "$out" "$work"

# Held-out evaluation sheets: crowded, 1024 x 1024, fonts never used for training, three seeds.
for s in 1 2 3; do
  [ -f "$work/heldout_$s/annotations.json" ] || cli specimens "$work/heldout_$s" --count 1 --split heldout --seed "$s" --style crowded
done

start=$(date +%s)
if [ -n "${EVAL_ONLY:-}" ]; then
  # score given weights only: STAGE1=... STAGE2=... EVAL_ONLY=1
  stage1=$STAGE1
elif [ -n "${STAGE1:-}" ]; then
  stage1=$STAGE1
else
  cli finetune --config "$cfg" --data "glyph-crops:train:$samples:1" --out "$work/stage1" --epochs 1 --batch-size 4 \
      --val "glyph-crops:heldout:200:2" --lr 1e-3 --warmup 100 --correction-clicks 1 --max-objects 4 --seed 0 \
      --threads "$threads"
  stage1=$work/stage1/model.safetensors
fi
[ -n "${EVAL_ONLY:-}" ] || cli finetune --config "$cfg" --checkpoint "$stage1" --data "glyph-crops:train:$samples2:7:tight" --out "$work/stage2" --epochs 3 \
    --batch-size 4 --val "glyph-crops:heldout:100:2:tight" --lr 5e-4 --warmup 50 --correction-clicks 1 --max-objects 4 --seed 1 \
    --threads "$threads"
if [ -z "${EVAL_ONLY:-}" ]; then
  cli train-centres --out "$work/centres1.safetensors" --steps "$centre_steps" --crop 192 --batch-size 8 --seed 0 --threads "$threads"
  cli train-centres --from "$work/centres1.safetensors" --out "$work/centres2.safetensors" --steps $((centre_steps * 15 / 8)) \
      --stop-at $((centre_steps * 5 / 16)) --lr 1e-3 --crop 192 --batch-size 8 --seed 5 --threads "$threads"
  cli train-centres --from "$work/centres2.safetensors" --out "$work/centres3.safetensors" --steps $((centre_steps * 25 / 16)) \
      --lr 1e-3 --crop 192 --batch-size 8 --seed 7 --foreground --threads "$threads"
  cli train-centres --from "$work/centres3.safetensors" --out "$work/centres4.safetensors" --steps $((centre_steps * 5 / 4)) \
      --lr 1e-3 --crop 192 --batch-size 8 --seed 13 --min-width-scale 0.6 --max-width-scale 1.1 --threads "$threads"
  cli train-centres --from "$work/centres4.safetensors" --out "$work/centres5.safetensors" --steps $((centre_steps * 3 / 4)) \
      --lr 7e-4 --crop 192 --batch-size 8 --seed 19 --min-width-scale 0.6 --max-width-scale 1.1 --unligated-crowded --threads "$threads"
  cli train-centres --from "$work/centres5.safetensors" --out "$work/centres.safetensors" --steps $((centre_steps * 5 / 8)) \
      --lr 5e-4 --crop 192 --batch-size 8 --seed 23 --min-width-scale 0.6 --max-width-scale 1.1 --unligated-crowded --small-crowded --threads "$threads"
fi
centres=${CENTRES:-$work/centres.safetensors}
train_s=$(( $(date +%s) - start ))

# Scores: the whole pipeline with stage-1 and stage-2 weights: one glyph per candidate (--no-split), split by clicks,
# by stroke cores, by the glyph-centre net (the default), and by the net with small glyphs read again at 1.5x.
results="["
for w in stage1 stage2; do
  weights=$stage1; [ "$w" = stage2 ] && weights=${STAGE2:-$work/stage2/model.safetensors}
  for mode in nosplit clicks cores centres centres_zoom; do
    flag="--split-method $mode"; [ "$mode" = nosplit ] && flag="--no-split"
    [ "$mode" = centres ] && flag="--split-method centres --centres $centres"
    [ "$mode" = centres_zoom ] && flag="--split-method centres --centres $centres --centre-zoom 1.5"
    for s in 1 2 3; do
      sheet="$work/heldout_$s/images/000000.png"
      cli glyphs "$sheet" --checkpoint "$weights" --config "$cfg" $flag --threads "$threads" --out "$work/eval_${w}_${mode}_$s" > /dev/null
      m=$(cli eval --pred "$work/eval_${w}_${mode}_$s/glyphs.json" --gt "$work/heldout_$s/annotations.json" --json)
      secs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timings_ms']['segment']/1000)" "$work/eval_${w}_${mode}_$s/glyphs.json" 2>/dev/null || echo null)
      results="$results{\"weights\":\"$w\",\"mode\":\"$mode\",\"sheet\":$s,\"segment_seconds\":$secs,\"metrics\":$m},"
    done
  done
done
results="${results%,}]"
echo "{\"train_seconds\":$train_s,\"stage1_samples\":$samples,\"stage2_samples\":$((samples2 * 3)),\"centre_steps\":$centre_steps,\"threads\":$threads,\"results\":$results}" > "$out/metrics.json"

[ -n "${EVAL_ONLY:-}" ] || cp "$work/stage2/model.safetensors" "$out/model.safetensors"
[ -n "${EVAL_ONLY:-}" ] || cp "$work/centres.safetensors" "$out/centres.safetensors"
echo "trained in ${train_s}s; metrics in $out/metrics.json"
