"""Markdown table from the JSON files of tools/bench_side_by_side.sh: for each timing, the median over
rounds of each side's median (and the smallest min), and the ratio C# / PyTorch of those medians;
for peak RSS, the largest over rounds.

    python3 tools/pytorch/bench_table.py OUTDIR
"""
import glob
import json
import os
import statistics
import sys

LABELS = [
    ("set_image_ms", "image encoder (`set_image`)"),
    ("predict_point_ms", "`predict`, one point (3 masks)"),
    ("predict_box_ms", "`predict`, box"),
    ("auto_ms", "automatic masks (32×32 points)"),
    ("track_1obj_ms_per_frame", "video, per frame, 1 object"),
    ("track_3obj_ms_per_frame", "video, per frame, 3 objects"),
    ("train_step_decoder_ms", "training step, decoder only"),
    ("train_step_full_ms", "training step, full"),
    ("peak_rss_mb", "peak RSS after the image part (MB)"),
    ("peak_rss_after_auto_mb", "peak RSS after automatic masks (MB)"),
    ("peak_rss_after_video_mb", "peak RSS after video (MB)"),
    ("peak_rss_after_train_mb", "peak RSS after training (MB)"),
]


def load(out, side):
    runs = []
    for path in sorted(glob.glob(os.path.join(out, f"{side}_round*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def main():
    out = sys.argv[1]
    cs, py = load(out, "cs"), load(out, "py")
    if not cs or not py:
        sys.exit(f"{out}: need cs_round*.json and py_round*.json")
    first = cs[0]
    print(f"threads {first['threads']}, image_size {first['image_size']}, {len(cs)} + {len(py)} runs; BLAS {first.get('blas')}")
    print()
    print("| benchmark | C# | PyTorch | ratio |")
    print("| --- | --- | --- | --- |")
    for key, label in LABELS:
        if key not in first or key not in py[0]:
            continue
        if key.startswith("peak_rss"):
            c, p = max(r[key] for r in cs), max(r[key] for r in py)
            print(f"| {label} | {c:.0f} | {p:.0f} | {c / p:.2f} |")
        else:
            cm = statistics.median(r[key]["median"] for r in cs)
            pm = statistics.median(r[key]["median"] for r in py)
            cmin = min(r[key]["min"] for r in cs)
            pmin = min(r[key]["min"] for r in py)
            print(f"| {label} | {cm:.0f} ({cmin:.0f}) | {pm:.0f} ({pmin:.0f}) | {cm / pm:.2f} |")
    for key in ("auto_masks",):
        if key in first:
            print(f"\n{key}: C# {[r[key] for r in cs]}, PyTorch {[r[key] for r in py]}")


if __name__ == "__main__":
    main()
