"""Helpers shared by bench.py and export_case.py: build the official SAM 2.1 model from a
TorchSam2 YAML config without hydra, and stand-ins for optional imports of the sam2 package.

The official package imports hydra (sam2/__init__.py), iopath (hieradet), tqdm and
torchvision.transforms. Where one of them is installed it is used as is; where it is missing a
minimal stand-in is registered, good for inference only:
  - hydra: the package-level config-module hook is a no-op (configs are read here, not by hydra);
  - iopath: only used to load pretrained trunk weights, which these tools never do;
  - tqdm: a pass-through iterator;
  - torchvision.transforms: ToTensor / Resize / Normalize as SAM2Transforms uses them, Resize
    being bilinear, align_corners=False, antialias=True (torchvision >= 0.17's tensor default).
  - sam2._C (the CUDA extension; without it fill_hole_area is silently skipped): the connected
    components in torch, so the video post-processing runs as with the extension.
  - torch < 2.0 has no F.scaled_dot_product_attention: the explicit softmax(q k^T / sqrt(d)) v,
    the same form TorchSam2's binding falls back to on such a libtorch.
"""
import importlib
import os
import re
import sys
import types

import torch
import torch.nn.functional as F
import yaml


def _missing(name):
    try:
        importlib.import_module(name)
        return False
    except ImportError:
        return True


def _register(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, mod)
    return mod


def install_stand_ins(verbose=True, connected_components=True):
    """Registers stand-ins for the optional imports that are missing; returns their names."""
    used = []
    if not hasattr(F, "scaled_dot_product_attention"):
        def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False):
            # q is scaled before q k^T (L x C elements rather than L x L), as TorchSam2 does
            attn = (query * (1.0 / query.size(-1) ** 0.5)) @ key.transpose(-2, -1)
            if is_causal:
                L, S = query.size(-2), key.size(-2)
                attn = attn.masked_fill(~torch.ones(L, S, dtype=torch.bool, device=query.device).tril(), float("-inf"))
            if attn_mask is not None:
                attn = attn.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else attn + attn_mask
            attn = attn.softmax(-1)
            if dropout_p > 0:
                attn = F.dropout(attn, dropout_p)
            return attn @ value

        F.scaled_dot_product_attention = scaled_dot_product_attention
        used.append("F.scaled_dot_product_attention")
    if _missing("hydra"):
        class _GlobalHydra:
            @staticmethod
            def instance():
                return _GlobalHydra()

            def is_initialized(self):
                return True

        _register("hydra", initialize_config_module=lambda *a, **k: None)
        _register("hydra.core")
        _register("hydra.core.global_hydra", GlobalHydra=_GlobalHydra)
        used.append("hydra")
    if _missing("iopath"):
        class _PathMgr:
            def open(self, *a, **k):
                raise RuntimeError("iopath is not installed (only needed for pretrained trunk weights)")

        _register("iopath")
        _register("iopath.common")
        _register("iopath.common.file_io", g_pathmgr=_PathMgr())
        used.append("iopath")
    if _missing("tqdm"):
        def _tqdm(it=None, *a, **k):
            return it

        _register("tqdm", tqdm=_tqdm)
        used.append("tqdm")
    if _missing("torchvision"):
        class ToTensor:
            def __call__(self, pic):
                t = torch.as_tensor(pic)
                if t.dim() == 2:
                    t = t[:, :, None]
                t = t.permute(2, 0, 1).contiguous()
                return t.float().div(255) if t.dtype == torch.uint8 else t.float()

        class Resize(torch.nn.Module):
            def __init__(self, size, antialias=True):
                super().__init__()
                self.size = list(size) if isinstance(size, (list, tuple)) else [size, size]
                self.antialias = antialias

            def forward(self, x):
                batched = x.dim() == 4
                y = x if batched else x[None]
                y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False, antialias=self.antialias)
                return y if batched else y[0]

        class Normalize(torch.nn.Module):
            def __init__(self, mean, std):
                super().__init__()
                self.mean, self.std = list(mean), list(std)

            def forward(self, x):
                shape = [-1, 1, 1]
                m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
                s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
                return (x - m) / s

        _register("torchvision")
        _register("torchvision.transforms", ToTensor=ToTensor, Resize=Resize, Normalize=Normalize)
        used.append("torchvision")
    else:
        import torchvision
        import torchvision.transforms as T

        major, minor = (int(x) for x in re.findall(r"\d+", torchvision.__version__)[:2])
        if (major, minor) < (0, 17) and not getattr(T.Resize, "_sam2_compat", False):
            # torchvision >= 0.17 antialiases tensors in Resize by default and SAM2Transforms relies on it;
            # older releases do not, which would change every preprocessed image
            base = T.Resize

            class Resize(base):
                _sam2_compat = True

                def __init__(self, size, interpolation=T.InterpolationMode.BILINEAR, max_size=None, antialias=True):
                    super().__init__(size, interpolation, max_size, antialias)

            T.Resize = Resize
            used.append(f"torchvision {torchvision.__version__} Resize with antialias=True (the >= 0.17 default)")
    try:
        importlib.import_module("sam2._C")
    except ImportError:
        if not connected_components:
            return used
        import sam2

        def get_connected_componnets(mask):  # (sic) the extension's name
            # 8-connected labelling by propagating the largest pixel id through each component
            fg = mask.to(torch.bool)
            n, _, h, w = fg.shape
            ids = torch.arange(1, h * w + 1, dtype=torch.float64, device=mask.device).view(1, 1, h, w)
            labels = torch.where(fg, ids.expand(n, 1, h, w), torch.zeros((), dtype=torch.float64, device=mask.device))
            while True:
                prev = labels
                for _ in range(8):
                    labels = torch.where(fg, F.max_pool2d(labels, 3, 1, 1), labels)
                if torch.equal(labels, prev):
                    break
            flat = labels.view(n, -1).long()
            areas = torch.stack([torch.bincount(f, minlength=h * w + 1)[f] for f in flat]).view(n, 1, h, w)
            areas = torch.where(fg, areas, torch.zeros_like(areas))
            return labels.to(torch.int32), areas.to(torch.int32)

        sam2._C = _register("sam2._C", get_connected_componnets=get_connected_componnets)
        used.append("sam2._C (connected components on the CPU)")
    if used and verbose:
        print(f"# stand-ins for missing packages: {', '.join(used)}", file=sys.stderr)
    return used


# ---- config ----------------------------------------------------------------------------------

_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _numbers(node):
    # YAML 1.1 reads "1e-6" as a string; hydra/OmegaConf reads it as a float
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    if isinstance(node, str) and _FLOAT_RE.match(node):
        return float(node)
    return node


def load_config(path):
    """The `model:` tree of a config file (hydra form), numbers parsed as OmegaConf would."""
    with open(path) as f:
        cfg = _numbers(yaml.safe_load(f))
    if "model" not in cfg:
        raise ValueError(f"{path}: no 'model:' section")
    return cfg["model"]


def apply_overrides(model_cfg, video=False, image_size=None):
    """The post-processing overrides of build_sam2 (and build_sam2_video_predictor when video)."""
    cfg = _numbers(yaml.safe_load(yaml.safe_dump(model_cfg)))  # deep copy
    cfg["sam_mask_decoder_extra_args"] = {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    }
    if video:
        cfg["binarize_mask_from_pts_for_mem_enc"] = True
        cfg["fill_hole_area"] = 8
    if image_size:
        cfg["image_size"] = image_size
        # RoPE tables follow the lowest-resolution feature map (image_size / 16)
        layer = cfg["memory_attention"]["layer"]
        for att in ("self_attention", "cross_attention"):
            if "feat_sizes" in layer.get(att, {}):
                layer[att]["feat_sizes"] = [image_size // 16, image_size // 16]
    return cfg


def instantiate(node):
    """hydra.utils.instantiate(..., _recursive_=True) for plain trees of _target_ nodes."""
    if isinstance(node, list):
        return [instantiate(v) for v in node]
    if not isinstance(node, dict):
        return node
    kwargs = {k: instantiate(v) for k, v in node.items() if k != "_target_"}
    if "_target_" not in node:
        return kwargs
    module_name, attr = node["_target_"].rsplit(".", 1)
    return getattr(importlib.import_module(module_name), attr)(**kwargs)


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


def load_state_dict_file(path):
    """A state dict from an official .pt checkpoint ({"model": ...}) or a .safetensors file (such as a
    parity case's weights), without the safetensors package."""
    if path.endswith(".safetensors"):
        import json
        import struct

        with open(path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        base = 8 + n
        sd = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            raw = bytearray(data[base + begin:base + end])
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            sd[name] = t.reshape(info["shape"])
        return sd
    sd = torch.load(path, map_location="cpu")
    return sd.get("model", sd)


def build_model(config_path, checkpoint=None, video=False, image_size=None, device="cpu"):
    """build_sam2 / build_sam2_video_predictor on a TorchSam2 config; returns (model, model_cfg)."""
    cfg = apply_overrides(load_config(config_path), video=video, image_size=image_size)
    node = dict(cfg)
    if video:
        node["_target_"] = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    model = instantiate(node)
    if checkpoint:
        sd = load_state_dict_file(checkpoint)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"checkpoint does not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.to(device)
    model.eval()
    return model, cfg


def image_predictor(model):
    """SAM2ImagePredictor with feature sizes from model.image_size (the official one hard-codes 1024's)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    p = SAM2ImagePredictor(model)
    s = model.image_size
    p._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    return p
