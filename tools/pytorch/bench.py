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
"""
import argparse
import json
import os
import resource
import sys
import time
import warnings

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "../../configs/sam2.1/sam2.1_hiera_t.yaml"))
    ap.add_argument("--checkpoint")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--video-frames", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
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
    image = torch.randint(0, 256, (720, 1280, 3), dtype=torch.uint8).numpy()
    r = {
        "config": a.config,
        "image_size": model.image_size,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "libtorch": torch.__version__,
    }
    r["set_image_ms"] = timed(n, lambda: predictor.set_image(image), device)
    r["predict_point_ms"] = timed(n, lambda: predictor.predict([[640.0, 360.0]], [1]), device)
    r["predict_box_ms"] = timed(n, lambda: predictor.predict(box=[100.0, 100.0, 900.0, 600.0], multimask_output=False), device)
    r["peak_rss_mb"] = peak_rss_mb()

    if a.video_frames > 0:
        import sam2.sam2_video_predictor as video_mod

        sd = model.state_dict()
        del predictor, model
        vmodel, _ = sam2_compat.build_model(a.config, None, video=True, image_size=a.image_size or None, device=device)
        vmodel.load_state_dict(sd)
        del sd
        torch.manual_seed(1)
        frames = torch.randn(max(2, a.video_frames), 3, vmodel.image_size, vmodel.image_size).to(device)
        r["video_frames"] = frames.shape[0]
        r["track_1obj_ms_per_frame"] = track(video_mod, vmodel, frames, 1, device)
        r["track_3obj_ms_per_frame"] = track(video_mod, vmodel, frames, 3, device)
        r["peak_rss_after_video_mb"] = peak_rss_mb()

    if a.json:
        print(json.dumps(r, indent=2))
    else:
        for k, v in r.items():
            print(f"{k:<18} " + (f"median {v['median']:.1f} ms, min {v['min']:.1f} ms" if isinstance(v, dict) else str(v)))


if __name__ == "__main__":
    main()
