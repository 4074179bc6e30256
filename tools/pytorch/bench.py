"""Times the official PyTorch SAM 2.1 with the protocol of `torchsam2 bench`, printing the same keys.

Needs torch and the official `sam2` package importable (pip install, or PYTHONPATH=<sam2 checkout>);
hydra/iopath/tqdm/torchvision are optional (see sam2_compat.py). Example:

    python3 tools/pytorch/bench.py --config configs/sam2.1/sam2.1_hiera_t.yaml --threads 2 --json
    ./torchsam2 bench --config configs/sam2.1/sam2.1_hiera_t.yaml --threads 2 --json

Protocol (same as the C# command): one warm-up call excluded, then --repeats timed calls, median
(the upper one for an even count) and min. The image is a seeded random 720x1280 RGB uint8 image;
set_image, predict with one positive point [640, 360] (multimask), predict with box
[100, 100, 900, 600] (single mask). peak_rss_mb is the process peak after the image part.
With --video-frames N: tracks 1 and then 3 objects (clicks on frame 0) over N seeded random
preprocessed frames of a 720x1280 video with SAM2VideoPredictor; reported per propagated frame
(frames 1..N-1; frame 0 is the prompted frame), median and min. Without sam2's CUDA extension the
official predictor skips the hole filling (fill_hole_area); TorchSam2 always does it.
With --auto: SAM2AutomaticMaskGenerator with its defaults (32x32 points, batches of 64) on --image,
or on a seeded random 1024x1024 image.
With --train: training steps of the official SAM2Train (training/ in the sam2 repository) on one
seeded random image_size^2 image with the three objects of `torchsam2 bench` (two rectangles and an
ellipse): point or box prompt then 7 correction clicks, MultiStepMultiMasksAndIous with the
official weights, backward, grad-norm clipping at 0.1, AdamW. "decoder" freezes the image
encoder (freeze_image_encoder=True), "full" trains everything. SAM2Train also runs the memory
encoder on the single frame, whose output no loss reads; TorchSam2's image training skips it, so
it is skipped here too (same work on both sides).

--blas openmp (the default, as TorchSam2 does) loads Debian's OpenMP build of OpenBLAS
(libopenblas0-openmp) before torch when it is installed; --blas system keeps the system's choice.
"""
import argparse
import ctypes
import json
import os
import platform
import resource
import sys
import time
import warnings


def prefer_openmp_blas():
    """As TorchSam2 does at start-up: load the OpenMP build of OpenBLAS before torch, so that libtorch's
    libblas.so.3 / libopenblas.so.0 (bound by soname) are that build rather than the pthread one."""
    d = f"/usr/lib/{platform.machine()}-linux-gnu/openblas-openmp"
    if not os.path.exists(os.path.join(d, "libopenblas.so.0")):
        return None
    for name in ("libopenblas.so.0", "libblas.so.3", "liblapack.so.3"):
        if os.path.exists(os.path.join(d, name)):
            ctypes.CDLL(os.path.join(d, name), mode=ctypes.RTLD_GLOBAL)
    return d


def _blas_choice():
    # read before argparse runs: the library has to be loaded before torch is imported
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--blas="):
            return arg.split("=", 1)[1]
        if arg == "--blas" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return "openmp"


if __name__ == "__main__" and _blas_choice() == "openmp":
    prefer_openmp_blas()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam2_compat  # noqa: E402

import torch  # noqa: E402

VIDEO_H, VIDEO_W = 720, 1280
OBJ_CLICKS = [(640, 360), (320, 200), (960, 540)]


def stats(times):
    times = sorted(times)
    return {"median": times[len(times) // 2], "min": times[0]}


def timed(repeats, body, device):
    body()  # warm-up: allocator, caches, lazy init
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        body()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return stats(times)


def set_blas_threads(n):
    """OpenBLAS keeps its own thread pool that torch.set_num_threads does not reach; TorchSam2's
    set_num_threads sets it too, so both sides run the same number of threads."""
    import ctypes
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
    for lib in libs:
        try:
            getattr(ctypes.CDLL(lib), "openblas_set_num_threads")(n)
            return True
        except (OSError, AttributeError):
            continue
    return False


def loaded_blas():
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            name = os.path.basename(path)
            if name.startswith(("libopenblas", "libblas.so", "libmkl_rt", "libblis")):
                return path
    return None


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # ru_maxrss is KiB on Linux


def track(predictor_cls_module, model, frames, n_obj, device):
    # init_state only takes a path; hand it the synthetic frames through its loader
    video_mod = predictor_cls_module
    saved = video_mod.load_video_frames
    video_mod.load_video_frames = lambda **kw: (frames, VIDEO_H, VIDEO_W)
    try:
        state = model.init_state(video_path="<synthetic>")
    finally:
        video_mod.load_video_frames = saved
    for k in range(n_obj):
        model.add_new_points_or_box(state, frame_idx=0, obj_id=k + 1, points=[list(OBJ_CLICKS[k])], labels=[1])
    times = []
    t0 = time.perf_counter()
    for frame_idx, _, _masks in model.propagate_in_video(state):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        if frame_idx != 0:
            times.append((t1 - t0) * 1e3)
        t0 = time.perf_counter()
    model.reset_state(state)
    del state
    return stats(times)


def load_image(path):
    """uint8 HxWx3 RGB numpy array, as the official predictors take it."""
    import numpy as np
    from PIL import Image

    return np.array(Image.open(path).convert("RGB"))


TRAIN_OBJECTS, TRAIN_CORRECTIONS = 3, 7


def train_masks(s):
    """The three objects of `torchsam2 bench --train`, tested at pixel centres."""
    c = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    py, px = c[:, None], c[None, :]
    rect1 = (px >= 0.125) & (px < 0.375) & (py >= 0.125) & (py < 0.625)
    ellipse = ((px - 0.65) / 0.2) ** 2 + ((py - 0.3) / 0.12) ** 2 <= 1
    rect2 = (px >= 0.5) & (px < 0.875) & (py >= 0.6) & (py < 0.9)
    return torch.stack([rect1, ellipse, rect2])


def install_training_stand_ins():
    """training/ imports tensordict (data_utils) and hydra, iopath, fvcore... (trainer) at module level;
    the loss and SAM2Train need only BatchedVideoDatapoint and CORE_LOSS_KEY from them."""
    import types

    try:
        import training.utils.data_utils  # noqa: F401
    except ImportError:
        import training.utils

        class BatchedVideoDatapoint:
            def __init__(self, img_batch, obj_to_frame_idx, masks, metadata=None, dict_key="all"):
                self.img_batch, self.obj_to_frame_idx, self.masks = img_batch, obj_to_frame_idx, masks
                self.metadata, self.dict_key = metadata, dict_key

            @property
            def num_frames(self):
                return self.img_batch.shape[0]

            @property
            def num_videos(self):
                return self.img_batch.shape[1]

            @property
            def flat_obj_to_img_idx(self):
                frame_idx, video_idx = self.obj_to_frame_idx.unbind(dim=-1)
                return video_idx * self.num_frames + frame_idx

            @property
            def flat_img_batch(self):
                return self.img_batch.transpose(0, 1).flatten(0, 1)

        mod = types.ModuleType("training.utils.data_utils")
        mod.BatchedVideoDatapoint = BatchedVideoDatapoint
        sys.modules[mod.__name__] = mod
        training.utils.data_utils = mod
    try:
        import training.trainer  # noqa: F401
    except ImportError:
        import training

        mod = types.ModuleType("training.trainer")
        mod.CORE_LOSS_KEY = "core_loss"
        sys.modules[mod.__name__] = mod
        training.trainer = mod


def train_steps(config, checkpoint, image_size, freeze_image_encoder, repeats, device):
    install_training_stand_ins()
    from training.loss_fns import MultiStepMultiMasksAndIous
    from training.utils.data_utils import BatchedVideoDatapoint

    cfg = sam2_compat.apply_overrides(sam2_compat.load_config(config), image_size=image_size)
    node = dict(cfg)
    node["_target_"] = "training.model.sam2.SAM2Train"
    # the official training config (configs/sam2.1_training); a single frame always gets point or box
    # prompts and its correction clicks
    node.update(prob_to_use_pt_input_for_train=0.5, prob_to_use_box_input_for_train=0.5, prob_to_sample_from_gt_for_train=0.1,
                num_frames_to_correct_for_train=1, num_init_cond_frames_for_train=1,
                num_correction_pt_per_frame=TRAIN_CORRECTIONS, freeze_image_encoder=freeze_image_encoder)
    model = sam2_compat.instantiate(node)
    if checkpoint:
        model.load_state_dict(sam2_compat.load_state_dict_file(checkpoint), strict=False)
    model = model.to(device)
    model._encode_memory_in_output = lambda *a, **k: None  # see the module docstring
    model.train()
    loss_fn = MultiStepMultiMasksAndIous(
        weight_dict={"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1},
        supervise_all_iou=True, iou_use_l1_loss=True, pred_obj_scores=True, focal_gamma_obj_score=0.0, focal_alpha_obj_score=-1.0)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=5e-6)

    s = model.image_size
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (s, s, 3), dtype=torch.uint8, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    masks = train_masks(s)
    n = masks.shape[0]

    def step():
        # the sample's preparation is part of the step, as in TorchSam2's Sam2Trainer.TrainStep
        img = ((pixels.permute(2, 0, 1).float() / 255 - mean) / std).to(device)
        batch = BatchedVideoDatapoint(
            img_batch=img[None, None],  # T=1 frame, B=1 image
            obj_to_frame_idx=torch.zeros(1, n, 2, dtype=torch.long, device=device),  # int32 upstream; torch 1.13 indexes with int64 only
            masks=masks[None].to(device))
        opt.zero_grad()
        outs = model(batch)
        losses = loss_fn(outs, batch.masks)
        losses["core_loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 0.1)
        opt.step()

    r = timed(repeats, step, device)
    del model, opt
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "../../configs/sam2.1/sam2.1_hiera_t.yaml"))
    ap.add_argument("--checkpoint")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--long-repeats", type=int, default=2, help="timed repeats for --auto and --train, after one warm-up")
    ap.add_argument("--video-frames", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--image", help="image for set_image, predict and --auto (default: seeded random pixels)")
    ap.add_argument("--auto", action="store_true", help="also time SAM2AutomaticMaskGenerator")
    ap.add_argument("--train", action="store_true", help="also time SAM2Train steps (decoder only; full)")
    ap.add_argument("--blas", choices=["openmp", "system"], default="openmp",
                    help="openmp: Debian's OpenMP OpenBLAS when installed, as TorchSam2 does; system: the system's libblas")
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
        set_blas_threads(a.threads)
    device = torch.device(a.device)
    n = max(1, a.repeats)
    # Without the CUDA extension sam2 skips fill_hole_area (with a warning); the torch stand-in for it
    # is exact but slow, so the bench keeps the official CPU behaviour (TorchSam2 does fill holes).
    sam2_compat.install_stand_ins(connected_components=False)
    warnings.filterwarnings("ignore", category=UserWarning)
    model, _ = sam2_compat.build_model(a.config, a.checkpoint, image_size=a.image_size or None, device=device)
    predictor = sam2_compat.image_predictor(model)
    torch.manual_seed(0)
    loaded = None if a.image is None else load_image(a.image)  # read once: set_image, predict and --auto
    image = torch.randint(0, 256, (720, 1280, 3), dtype=torch.uint8).numpy() if loaded is None else loaded
    r = {
        "config": a.config,
        "image_size": model.image_size,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "libtorch": torch.__version__,
        "blas": loaded_blas(),
        "image": a.image or "random 720x1280",
    }
    r["set_image_ms"] = timed(n, lambda: predictor.set_image(image), device)
    r["predict_point_ms"] = timed(n, lambda: predictor.predict([[640.0, 360.0]], [1]), device)
    r["predict_box_ms"] = timed(n, lambda: predictor.predict(box=[100.0, 100.0, 900.0, 600.0], multimask_output=False), device)
    r["peak_rss_mb"] = peak_rss_mb()
    del predictor

    if a.auto:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        torch.manual_seed(2)
        auto_image = torch.randint(0, 256, (1024, 1024, 3), dtype=torch.uint8).numpy() if loaded is None else loaded
        amg = SAM2AutomaticMaskGenerator(model)
        sz = model.image_size  # the official predictor hard-codes 1024's feature sizes
        amg.predictor._bb_feat_sizes = [(sz // 4, sz // 4), (sz // 8, sz // 8), (sz // 16, sz // 16)]
        count = [0]

        def generate():
            count[0] = len(amg.generate(auto_image))

        r["auto_image"] = f"{auto_image.shape[1]}x{auto_image.shape[0]}"
        r["auto_ms"] = timed(max(1, a.long_repeats), generate, device)
        r["auto_masks"] = count[0]
        r["peak_rss_after_auto_mb"] = peak_rss_mb()
        del amg

    if a.video_frames > 0:
        import sam2.sam2_video_predictor as video_mod

        sd = model.state_dict()
        del model
        vmodel, _ = sam2_compat.build_model(a.config, None, video=True, image_size=a.image_size or None, device=device)
        vmodel.load_state_dict(sd)
        del sd
        torch.manual_seed(1)
        frames = torch.randn(max(2, a.video_frames), 3, vmodel.image_size, vmodel.image_size).to(device)
        r["video_frames"] = frames.shape[0]
        r["track_1obj_ms_per_frame"] = track(video_mod, vmodel, frames, 1, device)
        r["track_3obj_ms_per_frame"] = track(video_mod, vmodel, frames, 3, device)
        r["peak_rss_after_video_mb"] = peak_rss_mb()
        del vmodel, frames
    else:
        del model

    if a.train:
        r["train_objects"] = TRAIN_OBJECTS
        r["train_corrections"] = TRAIN_CORRECTIONS
        r["train_step_decoder_ms"] = train_steps(a.config, a.checkpoint, a.image_size or None, True, max(1, a.long_repeats), device)
        r["train_step_full_ms"] = train_steps(a.config, a.checkpoint, a.image_size or None, False, max(1, a.long_repeats), device)
        r["peak_rss_after_train_mb"] = peak_rss_mb()

    if a.json:
        print(json.dumps(r, indent=2))
    else:
        for k, v in r.items():
            print(f"{k:<24} " + (f"median {v['median']:.1f} ms, min {v['min']:.1f} ms" if isinstance(v, dict) else str(v)))


if __name__ == "__main__":
    main()
