"""Purification quality on paired renders (wild input → indoor target): PSNR, SSIM, pupil shift."""

from __future__ import annotations

import argparse
from pathlib import Path

from eyepurify.bench import command_line
from eyepurify.bench.paired import (
    classical_methods,
    evaluate,
    load_pairs,
    markdown_table,
    render_pairs,
    sample_sheet,
)
from eyepurify.io import write_image, write_json, write_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="paired renders (eyepurify render --domain both); default: render them")
    p.add_argument("--n", type=int, default=200, help="pairs to evaluate")
    p.add_argument("--seed", type=int, default=2, help="seed of the rendered test pairs")
    p.add_argument("--wild-profile", choices=["v1", "v2"], default="v2", help="wild look of the rendered test pairs (default v2)")
    p.add_argument("--size", default="72x120", help="size HxW of the rendered test pairs")
    p.add_argument("--models", nargs="*", default=["v1=v1", "v2=default"],
                   help="purifiers as NAME=MODEL (a model file, or a shipped set: default, v1, fast); default: v1 and the shipped default")
    p.add_argument("--segmenter", default="default", help="segmenter for the pupil shift ('none' to skip)")
    p.add_argument("--optimize-iters", type=int, default=0,
                   help="also run the L-BFGS rows (gatys, masked; lite0) with this many iterations (slow: use a small --n)")
    p.add_argument("--masks", choices=["gt", "predicted", "both"], default="both",
                   help="masks given to the purifiers: ground truth, the segmenter's, or a row for each")


def run(args: argparse.Namespace) -> str:
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter, default_weights_path

    n = 16 if args.quick else args.n
    from eyepurify.imaging import parse_size

    data = load_pairs(args.data, n) if args.data else render_pairs(n, parse_size(args.size, lo=8), args.seed, args.wild_profile)
    style_set = render_pairs(8, data.wild[0].shape[:2], args.seed + 1000)
    style = style_set.indoor
    segment = None
    if args.segmenter != "none":
        path = default_weights_path() if args.segmenter == "default" else Path(args.segmenter)
        if path.is_file():
            segment = Segmenter.from_pretrained(path)
    methods = classical_methods(style)
    for spec in dict.fromkeys(args.models):
        name, _, path = spec.rpartition("=")
        name = name or Path(path).stem
        p = Purifier.from_pretrained(path, segmenter=segment)
        if not p.needs_masks:
            methods[name] = lambda ims, labs, p=p: p.purify_arrays(ims)  # type: ignore[misc]
            continue
        if args.masks in ("gt", "both"):
            methods[f"{name} (ground-truth masks)"] = lambda ims, labs, p=p: p.purify_arrays(ims, labs)  # type: ignore[misc]
        if args.masks in ("predicted", "both") and segment is not None:
            methods[f"{name} (predicted masks)"] = lambda ims, labs, p=p: p.purify_arrays(ims, None)  # type: ignore[misc]
    if args.optimize_iters > 0:
        methods.update(optimization_methods(style_set, 2 if args.quick else args.optimize_iters))
    kept: dict[str, list] = {}
    rows = evaluate(methods, data, segment, keep=kept)
    out = Path(args.out)
    write_image(out / "paired_samples.png", sample_sheet(data, kept))
    table = markdown_table(rows)
    source = args.data or f"rendered, seed {args.seed}, wild profile {args.wild_profile}"
    toy = "toy settings, not a result: " if args.quick else ""
    write_json(out / "paired.json", {"command": command_line("paired", args), "n": len(data.wild), "size": data.wild[0].shape[:2],
                                     "masks": args.masks, "data": source, "quick": bool(args.quick), "rows": rows})
    write_text(out / "paired.md", "# Purification of paired renders (wild input, indoor target)\n\n"
               + f"{toy}Paired renders ({source}): {len(data.wild)} pairs at {data.wild[0].shape[0]}×{data.wild[0].shape[1]}, "
               + f"purifier masks: {args.masks}\n\n" + table)
    best = max(rows, key=lambda r: r["psnr"][0])
    return table + f"best PSNR to the paired indoor target: {best['method']} {best['psnr'][0]:.2f} dB"


def optimization_methods(style_set, iters: int) -> dict:
    """Projected L-BFGS rows (init = content, the first style render as S, lite0 loss)."""
    from eyepurify.losses.regions import Regions
    from eyepurify.models.backbones import create_backbone
    from eyepurify.optimize import optimize_image
    from eyepurify.tensors import images_to_tensor, labels_to_tensor, tensor_to_images

    backbone = create_backbone("lite0")
    s = images_to_tensor([style_set.indoor[0]]).contiguous()
    s_reg = Regions.from_labels(labels_to_tensor([style_set.labels[0]]))

    def make(method: str):
        def fn(ims, labs):
            outs = []
            for im, lab in zip(ims, labs, strict=True):
                x = images_to_tensor([im]).contiguous()
                reg = Regions.from_labels(labels_to_tensor([lab])) if method == "masked" else None
                y, _ = optimize_image(x, s, backbone, reg, s_reg if method == "masked" else None,
                                      method=method, iters=iters, init="content", show_progress=False)  # type: ignore[arg-type]
                outs.append(tensor_to_images(y)[0])
            return outs
        return fn

    return {f"{m} optimisation (lite0, {iters} it)": make(m) for m in ("gatys", "masked")}
