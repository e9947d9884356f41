"""`eyepurify optimize CONTENT --style S --method gatys|masked`: projected L-BFGS purification."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from eyepurify.errors import EyepurifyError
from eyepurify.imaging import parse_size, resize_image, resize_labels
from eyepurify.io import read_image, read_mask, write_image, write_json
from eyepurify.losses.regions import Regions
from eyepurify.losses.total import LossConfig
from eyepurify.optimize import INITS, METHODS, optimize_image

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: this loss network has no ImageNet training; the result is not a "
    "purification by the paper's method"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize",
        help="purify one image by projected L-BFGS (the Gatys rows)",
        description=(
            "Optimise the pixels of one image against a style image with projected L-BFGS. "
            "'gatys': content + whole-image Gram loss; 'masked': the region-level loss "
            "(needs label-map masks for both images: 0 skin, 1 sclera, 2 iris, 3 pupil)."
        ),
    )
    p.add_argument("content", help="content (real) image")
    p.add_argument("--style", required=True, help="style (synthetic) image")
    p.add_argument("--content-mask", default=None, help="label map of the content image")
    p.add_argument("--style-mask", default=None, help="label map of the style image")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--regions", default="union", choices=("union", "classes"),
                   help="attention as iris ∪ pupil (union) or one local style term per class")
    p.add_argument("--iters", type=int, default=400, help="L-BFGS iterations (default 400)")
    p.add_argument("--init", default="noise", choices=INITS, help="start from noise or the content")
    p.add_argument("--backbone", default="lite0", help="vgg19, lite0, random or test_tiny (default lite0)")
    p.add_argument("--vgg19-weights", default=None, help="torchvision VGG-19 state-dict file")
    p.add_argument("--size", default=None, help="resize content and style (and masks) to HxW, e.g. 72x120")
    p.add_argument("--theta", type=float, default=None,
                   help=f"TV weight on the 0-255 scale (default {LossConfig().theta:g})")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise init and random backbones")
    p.add_argument("--out", required=True, help="output image (PNG)")
    p.add_argument("--log", default=None, help="JSON log (default: OUT with suffix .json)")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def _image_tensor(a: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """H×W×3 uint8 -> 1×3×h×w float in [0, 1], resized (the imaging policy) when asked."""
    if size is not None:
        a = resize_image(a, size)
    return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0) / 255.0


def _label_tensor(m: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """H×W uint8 labels -> 1×h×w int64, resized by nearest neighbour when asked."""
    if size is not None:
        m = resize_labels(m, size)
    return torch.from_numpy(np.array(m, dtype=np.int64)).unsqueeze(0)


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size) if args.size else None
    if args.iters < 0:
        raise EyepurifyError(f"--iters must be >= 0, got {args.iters}")
    out = Path(args.out)
    log_path = Path(args.log) if args.log else out.with_suffix(".json")
    masks_given = [m for m in (args.content_mask, args.style_mask) if m]
    if args.method == "masked" and len(masks_given) != 2:
        raise EyepurifyError(
            "--method masked needs --content-mask and --style-mask (label maps: 0 skin, 1 sclera, "
            "2 iris, 3 pupil), or use --method gatys"
        )
    if args.method == "gatys" and masks_given:
        raise EyepurifyError("--method gatys uses no masks (drop --content-mask/--style-mask, or use --method masked)")
    if args.vgg19_weights and args.backbone != "vgg19":
        raise EyepurifyError("--vgg19-weights is only used with --backbone vgg19")

    content_np = read_image(args.content)
    style_np = read_image(args.style)
    content = _image_tensor(content_np, size)
    style = _image_tensor(style_np, size)
    content_regions = style_regions = None
    if args.method == "masked":
        per_class = args.regions == "classes"
        cm = read_mask(args.content_mask, shape=content_np.shape[:2])
        sm = read_mask(args.style_mask, shape=style_np.shape[:2])
        content_regions = Regions.from_labels(_label_tensor(cm, size), per_class)
        style_regions = Regions.from_labels(_label_tensor(sm, size), per_class)

    from eyepurify.models.backbones import create_backbone

    backbone = create_backbone(args.backbone, args.vgg19_weights, seed=args.seed)
    if backbone.is_random:
        print(f"eyepurify: warning: backbone {backbone.name!r}: {RANDOM_WEIGHTS_WARNING}", file=sys.stderr)
    config = LossConfig() if args.theta is None else dataclasses.replace(LossConfig(), theta=args.theta)
    start = time.perf_counter()
    image, log = optimize_image(
        content, style, backbone, content_regions, style_regions, method=args.method,
        iters=args.iters, init=args.init, seed=args.seed, config=config,
    )
    seconds = time.perf_counter() - start
    pixels = (image[0].permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    write_image(out, pixels)
    record: dict[str, object] = {
        "command": "optimize",
        "content": str(args.content),
        "style": str(args.style),
        "content_mask": args.content_mask,
        "style_mask": args.style_mask,
        "regions": args.regions if args.method == "masked" else None,
        "size": list(image.shape[2:]),
        "style_size": list(style.shape[2:]),
        "init": args.init,
        "seed": args.seed,
        "backbone_weights": args.vgg19_weights,
        "output": str(out),
        "wall_seconds": seconds,
    }
    if backbone.is_random:
        record["WARNING"] = RANDOM_WEIGHTS_WARNING
    record.update(log.to_dict())
    write_json(log_path, record)
    final = log.final
    print(
        f"wrote {out} and {log_path}: {log.iterations_completed} iterations, {log.closure_evals} "
        f"evaluations, total {log.initial['total']:.4g} -> {final['total']:.4g}, {seconds:.1f} s "
        f"({log.stop_reason})"
    )
    return 0
