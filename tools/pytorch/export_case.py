"""Exports a parity case (format: shared/parity/README.md) from the official PyTorch SAM 2.1.

Run it where torch and the official `sam2` package are importable (pip install, or
PYTHONPATH=<sam2 checkout>), then replay the case with `torchsam2 parity <out>`:

    # image: set_image + predict steps on your image with a real checkpoint
    python3 tools/pytorch/export_case.py image --config configs/sam2.1/sam2.1_hiera_t.yaml \\
        --checkpoint sam2.1_hiera_tiny.pt --image photo.jpg --point 320,240 --point 100,80,0 \\
        --box 50,40,500,400 --out cases/my_image
    # video: init_state + prompts + propagate_in_video on a folder of JPEG frames (00000.jpg, ...)
    python3 tools/pytorch/export_case.py video --config configs/sam2.1/sam2.1_hiera_t.yaml \\
        --checkpoint sam2.1_hiera_tiny.pt --frames clip/ --point 1:320,240 --box 2:50,40,200,300 --out cases/my_video

Without --checkpoint the model keeps seeded random weights (--random-weights SEED: the default
init plus N(0, 0.02) noise on every tensor, so zero-initialized ones are exercised too);
--synthetic-image HxW / --synthetic-frames TxHxW make a seeded smooth random input instead of a file.
Image steps: set_image; the first point alone (multimask); all points (single mask); the box (single
mask); box + points (multimask); then the first point again with the previous step's best low-res
logits as mask_input. Video steps: init_state; one add_new_points_or_box per object (all on
--prompt-frame); propagate_in_video forward.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam2_compat  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
           torch.uint8: "U8", torch.bool: "BOOL"}


def save_safetensors(tensors, path):
    """safetensors file: 8-byte LE header size, JSON header, raw little-endian bytes."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        from safetensors.torch import save_file

        return save_file(tensors, path)
    except ImportError:
        pass
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        flat = t.reshape(-1)
        data = (flat.view(torch.int16) if t.dtype == torch.bfloat16 else flat).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def write_yaml(model_cfg, path):
    with open(path, "w") as f:
        f.write("# @package _global_\n# written by tools/pytorch/export_case.py (build_sam2 overrides applied)\n\n")
        yaml.safe_dump({"model": model_cfg}, f, sort_keys=False)


def smooth_random_rgb(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, max(2, h // 32), max(2, w // 32), generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def parse_floats(s, n=None):
    v = [float(x) for x in s.split(",")]
    if n is not None and len(v) not in n:
        raise argparse.ArgumentTypeError(f"'{s}': expected {' or '.join(map(str, n))} comma-separated numbers")
    return v


def build(a, video):
    model, cfg = sam2_compat.build_model(a.config, a.checkpoint, video=video, image_size=a.image_size or None)
    if not a.checkpoint:
        torch.manual_seed(a.random_weights)
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.add_(torch.randn_like(t) * 0.02)
    return model, cfg


def case_json(kind, steps, a, out):
    d = {"kind": kind, "config": "model.yaml", "weights": "weights.safetensors", "inputs": "inputs.safetensors",
         "expected": "expected.safetensors", "torch_version": torch.__version__,
         "tolerance": {"atol": a.atol, "rtol": a.rtol, "mask_agreement": a.mask_agreement},
         "source": {"config": os.path.basename(a.config), "checkpoint": os.path.basename(a.checkpoint) if a.checkpoint else None,
                    "random_weights_seed": None if a.checkpoint else a.random_weights},
         "steps": steps}
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(d, f, indent=1)


def export_image(a):
    model, cfg = build(a, video=False)
    predictor = sam2_compat.image_predictor(model)
    if a.image:
        from PIL import Image

        image = np.array(Image.open(a.image).convert("RGB"))
    else:
        h, w = (int(v) for v in a.synthetic_image.lower().split("x"))
        image = smooth_random_rgb(h, w, a.random_weights)
    H, W = image.shape[:2]
    points = [parse_floats(p, (2, 3)) for p in a.point] or [[W / 2, H / 2]]
    labels = [int(p[2]) if len(p) == 3 else 1 for p in points]
    points = [p[:2] for p in points]
    box = parse_floats(a.box, (4,)) if a.box else ([W * 0.25, H * 0.25, W * 0.75, H * 0.75] if not a.point else None)

    inputs = {"image": torch.from_numpy(image.copy())}
    expected = {}
    captured = {}
    forward_image = model.forward_image

    def capture(img_batch):
        captured["preprocessed"] = img_batch.clone()
        out = forward_image(img_batch)
        captured["out"] = out
        return out

    model.forward_image = capture
    predictor.set_image(image)
    model.forward_image = forward_image
    bo = captured["out"]
    last = len(bo["backbone_fpn"]) - 1
    expected["preprocessed"] = captured["preprocessed"]
    expected["image_embed"] = predictor._features["image_embed"]
    expected["high_res_feats.0"], expected["high_res_feats.1"] = predictor._features["high_res_feats"]
    expected["backbone.vision_features"] = bo["vision_features"]
    expected[f"backbone.fpn.{last}"] = bo["backbone_fpn"][last]
    expected[f"backbone.pos.{last}"] = bo["vision_pos_enc"][last]
    steps = [{"op": "set_image", "image": "image",
              "expect": {k: k for k in expected}}]

    calls = [dict(point_coords=points[:1], point_labels=labels[:1], multimask_output=True)]
    if len(points) > 1:
        calls.append(dict(point_coords=points, point_labels=labels, multimask_output=False))
    if box:
        calls.append(dict(box=box, multimask_output=False))
        calls.append(dict(point_coords=points, point_labels=labels, box=box, multimask_output=True))
    calls.append(dict(point_coords=points[:1], point_labels=labels[:1], multimask_output=False, mask_from_previous=True))
    prev = None
    for i, c in enumerate(calls):
        name = f"predict{i}"
        step = {"op": "predict", "multimask_output": c["multimask_output"], "normalize_coords": True, "return_logits": True}
        kw = {}
        if "point_coords" in c:
            step["point_coords"], step["point_labels"] = c["point_coords"], c["point_labels"]
            kw["point_coords"], kw["point_labels"] = np.array(c["point_coords"], np.float32), np.array(c["point_labels"], np.int32)
        if "box" in c:
            step["box"] = c["box"]
            kw["box"] = np.array(c["box"], np.float32)
        if c.get("mask_from_previous"):
            low, iou = prev
            mask_input = low[int(np.argmax(iou))][None].copy()
            inputs[f"{name}.mask_input"] = torch.from_numpy(mask_input)
            step["mask_input"] = f"{name}.mask_input"
            kw["mask_input"] = mask_input
        masks, iou, low = predictor.predict(multimask_output=c["multimask_output"], return_logits=True, normalize_coords=True, **kw)
        prev = (low, iou)
        for k, v in (("masks", masks), ("iou_predictions", iou), ("low_res_masks", low)):
            expected[f"{name}.{k}"] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        step["expect"] = {k: f"{name}.{k}" for k in ("masks", "iou_predictions", "low_res_masks")}
        steps.append(step)
    return model, cfg, steps, inputs, expected


def export_video(a):
    import sam2.sam2_video_predictor  # noqa: F401
    from PIL import Image

    model, cfg = build(a, video=True)
    tmp = None
    frames_dir = a.frames
    if not frames_dir:
        t, h, w = (int(v) for v in a.synthetic_frames.lower().split("x"))
        tmp = frames_dir = tempfile.mkdtemp(prefix="sam2_frames_")
        base = smooth_random_rgb(h, w + 8 * t, a.random_weights)
        for i in range(t):  # a slowly panning smooth image
            Image.fromarray(base[:, 8 * i:8 * i + w]).save(os.path.join(frames_dir, f"{i:05d}.jpg"), quality=95)
    try:
        names = sorted((p for p in os.listdir(frames_dir) if os.path.splitext(p)[-1].lower() in (".jpg", ".jpeg")),
                       key=lambda p: int(os.path.splitext(p)[0]))
        frames_u8 = torch.from_numpy(np.stack([np.array(Image.open(os.path.join(frames_dir, p)).convert("RGB")) for p in names]))
        state = model.init_state(video_path=frames_dir)
    finally:
        if tmp:
            shutil.rmtree(tmp)
    H, W = state["video_height"], state["video_width"]
    inputs = {"frames": state["images"].clone(), "frames_u8": frames_u8}
    steps = [{"op": "init_state", "frames": "frames", "video_height": H, "video_width": W}]
    prompts = {}
    for p in a.point:
        obj, xy = p.split(":")
        v = parse_floats(xy, (2, 3))
        d = prompts.setdefault(int(obj), {})
        d.setdefault("points", []).append(v[:2])
        d.setdefault("labels", []).append(int(v[2]) if len(v) == 3 else 1)
    if a.box:
        obj, b = a.box.split(":")
        prompts.setdefault(int(obj), {})["box"] = parse_floats(b, (4,))
    if not prompts:
        prompts = {1: {"points": [[W / 2, H / 2]], "labels": [1]}}
    expected = {}

    def frame_expect(name, frame_idx, obj_ids, masks):
        expected[name] = masks.float().clone()
        return {"frame_idx": frame_idx, "obj_ids": list(obj_ids), "video_res_masks": name}

    for i, (obj, pr) in enumerate(prompts.items()):
        step = {"op": "add_new_points_or_box", "frame_idx": a.prompt_frame, "obj_id": obj}
        kw = {}
        if "points" in pr:
            step["points"], step["labels"] = pr["points"], pr["labels"]
            kw["points"], kw["labels"] = np.array(pr["points"], np.float32), np.array(pr["labels"], np.int32)
        if "box" in pr:
            step["box"] = pr["box"]
            kw["box"] = np.array(pr["box"], np.float32)
        f, ids, masks = model.add_new_points_or_box(state, frame_idx=a.prompt_frame, obj_id=obj, **kw)
        e = frame_expect(f"step{i}.video_res_masks", f, ids, masks)
        step["expect"] = {"obj_ids": e["obj_ids"], "video_res_masks": e["video_res_masks"]}
        steps.append(step)
    k = len(steps) - 1
    expect = [frame_expect(f"step{k}.frame{f}.video_res_masks", f, ids, m) for f, ids, m in model.propagate_in_video(state)]
    steps.append({"op": "propagate_in_video", "expect": expect})
    return model, cfg, steps, inputs, expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("kind", choices=["image", "video"])
    ap.add_argument("--config", required=True, help="a TorchSam2/sam2 YAML config (model: tree with _target_ keys)")
    ap.add_argument("--checkpoint", help="official .pt ({'model': state_dict}); default: random weights")
    ap.add_argument("--random-weights", type=int, default=0, metavar="SEED")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--image", help="image file (image kind)")
    ap.add_argument("--synthetic-image", default="480x640", metavar="HxW")
    ap.add_argument("--frames", help="folder of JPEG frames named by number (video kind)")
    ap.add_argument("--synthetic-frames", default="4x240x320", metavar="TxHxW")
    ap.add_argument("--point", action="append", default=[], help="x,y[,label] (video: OBJ:x,y[,label]); repeatable")
    ap.add_argument("--box", help="x0,y0,x1,y1 (video: OBJ:x0,y0,x1,y1)")
    ap.add_argument("--prompt-frame", type=int, default=0)
    ap.add_argument("--atol", type=float, default=None)
    ap.add_argument("--rtol", type=float, default=None)
    ap.add_argument("--mask-agreement", type=float, default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    video = a.kind == "video"
    a.atol = a.atol if a.atol is not None else (1e-2 if video else 2e-3)
    a.rtol = a.rtol if a.rtol is not None else (1e-2 if video else 2e-3)
    a.mask_agreement = a.mask_agreement if a.mask_agreement is not None else (0.995 if video else 0.999)

    sam2_compat.install_stand_ins()
    warnings.filterwarnings("ignore", category=UserWarning)
    with torch.no_grad():
        model, cfg, steps, inputs, expected = (export_video if video else export_image)(a)
    os.makedirs(a.out, exist_ok=True)
    write_yaml(cfg, os.path.join(a.out, "model.yaml"))
    save_safetensors(model.state_dict(), os.path.join(a.out, "weights.safetensors"))
    save_safetensors(inputs, os.path.join(a.out, "inputs.safetensors"))
    save_safetensors(expected, os.path.join(a.out, "expected.safetensors"))
    case_json(a.kind, steps, a, a.out)
    print(f"wrote {a.kind} case to {a.out}: {len(steps)} steps, {len(expected)} expected tensors")


if __name__ == "__main__":
    main()
