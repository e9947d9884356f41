"""Objective (paper Fig. 8): the feed-forward output's training loss vs projected L-BFGS iterations.

On the same images, the shipped purifier's output O = f(I, mask) is scored with the loss it
was trained on (``eyepurify.losses.total.total_loss``, the ``LossConfig`` stored in the
model file, its loss network), and the projected L-BFGS baseline minimises that same
objective (``optimize_image(method="masked", init="content")``) on the pixels. The
headline is the number of L-BFGS iterations the feed-forward pass is worth: the first
iteration whose loss is ≤ the feed-forward loss (median over images).

Images: ``wild`` renders (content) with their label maps; style: one ``indoor`` render of
another draw with its label map. Regions are the hard label maps (iris ∪ pupil) for both
O/I and S; in training the purifier's loss used the attention subnet's soft maps, which
were trained to reproduce exactly these regions.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIZES = "72x120,144x240,288x480"
DEFAULT_ITERS = "100,100,60"


def equivalent_iterations(ff_loss: float, curve: Sequence[float]) -> float:
    """First k with ``curve[k] ≤ ff_loss``; ``curve[0]`` is the loss of the initial image
    (iteration 0), ``curve[k]`` after L-BFGS iteration k. ``math.inf`` when never reached."""
    for k, v in enumerate(curve):
        if v <= ff_loss:
            return float(k)
    return math.inf


def median_iterations(values: Sequence[float]) -> float:
    """Median of per-image equivalents; ``inf`` entries (never reached) sort last, and the
    median is ``inf`` when it touches one of them."""
    if not values:
        return math.nan
    return float(statistics.median(sorted(values)))


def format_iterations(v: float, max_iter: int) -> str:
    """"N" or ">max" (never reached within ``max_iter`` iterations)."""
    if math.isnan(v):
        return "–"
    return f">{max_iter}" if math.isinf(v) else f"{v:g}"


def json_safe(obj: object) -> object:
    """A copy with non-finite floats replaced by None (strict JSON has no inf/NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def parse_sizes(text: str) -> list[tuple[int, int]]:
    from eyepurify.errors import EyepurifyError

    out = []
    for part in text.split(","):
        try:
            h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise EyepurifyError(f"size {part!r} is not HxW (e.g. 72x120)") from None
        out.append((h, w))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="purifier model file (default: the shipped one)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated HxW sizes")
    p.add_argument("--iters", default=DEFAULT_ITERS, help="L-BFGS iterations per size (one number or one per size)")
    p.add_argument("--n", type=int, default=3, help="images per size")
    p.add_argument("--seed", type=int, default=0, help="seed of the rendered content and style images")


def loss_config_from_meta(meta: dict[str, Any]):
    """The LossConfig a purifier model file says it was trained with (defaults if absent)."""
    from eyepurify.losses.total import LossConfig

    raw = meta.get("train")
    train: dict[str, Any] = raw if isinstance(raw, dict) else {}
    loss = dict(train.get("loss") or {})
    return LossConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in loss.items()})  # type: ignore[arg-type]


def feed_forward_loss(net, backbone, x, lab, s, s_lab, cfg) -> tuple[dict[str, float], float]:
    """(terms of O = net(I, mask) under the masked objective, seconds of the forward pass)."""
    import time

    import torch

    from eyepurify.losses.regions import Regions
    from eyepurify.losses.total import total_loss
    from eyepurify.tensors import one_hot

    layers = cfg.masked_layers
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = net(x, one_hot(lab)) if net.config.mask_channels else net(x)
        dt = time.perf_counter() - t0
        terms = total_loss(
            backbone.features(out, layers), backbone.features(x, layers), backbone.features(s, layers),
            out, Regions.from_labels(lab), Regions.from_labels(s_lab), cfg,
        )
    return {k: float(v) for k, v in terms.items() if "/" not in k}, dt


def measure_size(net, backbone, cfg, size: tuple[int, int], n: int, iters: int, seed: int, bar=None) -> dict[str, Any]:
    """Per-image feed-forward loss, L-BFGS curve and equivalent iterations at one size."""
    from eyepurify.bench.paired import render_pairs
    from eyepurify.losses.regions import Regions
    from eyepurify.optimize import optimize_image
    from eyepurify.tensors import images_to_tensor, labels_to_tensor

    data = render_pairs(n, size, seed)
    style = render_pairs(1, size, seed + 1000)
    s = images_to_tensor([style.indoor[0]]).contiguous()
    s_lab = labels_to_tensor([style.labels[0]])
    images = []
    for im, lab_np in zip(data.wild, data.labels, strict=True):
        x = images_to_tensor([im]).contiguous()
        lab = labels_to_tensor([lab_np])
        ff, ff_s = feed_forward_loss(net, backbone, x, lab, s, s_lab, cfg)
        _, log = optimize_image(
            x, s, backbone, Regions.from_labels(lab), Regions.from_labels(s_lab), method="masked",
            iters=iters, init="content", config=cfg, show_progress=False,
        )
        curve = [log.initial["total"]] + [it["total"] for it in log.iterations]
        images.append({
            "feed_forward": ff, "feed_forward_seconds": ff_s,
            "lbfgs_total": curve, "lbfgs_seconds_per_iteration": float(np.median([it["seconds"] for it in log.iterations])) if log.iterations else None,
            "stop_reason": log.stop_reason,
            "equivalent_iterations": equivalent_iterations(ff["total"], curve),
            "lbfgs_warnings": log.warnings,
        })
        if bar is not None:
            bar.update(1)
    eq = [im["equivalent_iterations"] for im in images]
    return {
        "size": list(size), "iters": iters, "n": n, "images": images,
        "median_equivalent_iterations": median_iterations(eq),  # type: ignore[arg-type]
    }


def figure(results: list[dict[str, Any]], path: Path) -> None:
    """Loss vs L-BFGS iteration, one panel per size; the feed-forward level as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, r in zip(axes[0], results, strict=True):
        for i, im in enumerate(r["images"]):
            c = colors[i % len(colors)]
            ax.plot(range(len(im["lbfgs_total"])), im["lbfgs_total"], c=c, lw=1.2, label=f"L-BFGS, image {i}")
            ax.axhline(im["feed_forward"]["total"], c=c, ls="--", lw=1, label=f"feed-forward, image {i}")
        ax.set_yscale("log")
        ax.set_xlabel("L-BFGS iteration (0 = the input image)")
        ax.set_ylabel("total loss (training objective)")
        h, w = r["size"]
        med = format_iterations(r["median_equivalent_iterations"], r["iters"])
        ax.set_title(f"{h}×{w}: feed-forward ≈ {med} iterations (median)", fontsize=9)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> str:
    import torch

    from eyepurify.bench import command_line
    from eyepurify.errors import EyepurifyError
    from eyepurify.io import write_json, write_text
    from eyepurify.models.backbones import create_backbone
    from eyepurify.models.backbones.base import flush_denormals
    from eyepurify.progress import progress_bar
    from eyepurify.purify import load_transform_net, packaged_weights

    if args.quick:
        sizes, iters, n = [(32, 48)], [3], 2
    else:
        sizes = parse_sizes(args.sizes)
        iters = [int(v) for v in str(args.iters).split(",")]
        if len(iters) == 1:
            iters = iters * len(sizes)
        if len(iters) != len(sizes):
            raise EyepurifyError(f"--iters gives {len(iters)} values for {len(sizes)} sizes (give one, or one per size)")
        n = args.n
    model = Path(args.model) if args.model else packaged_weights("purifier.safetensors")
    net, meta = load_transform_net(model)
    cfg = loss_config_from_meta(meta)
    raw = meta.get("train")
    train: dict[str, Any] = raw if isinstance(raw, dict) else {}
    backbone = create_backbone(str(train.get("backbone", "lite0")), train.get("vgg19_weights"))
    results = []
    bar = progress_bar(range(n * len(sizes)), total=n * len(sizes), desc="objective")
    with flush_denormals():
        for size, it in zip(sizes, iters, strict=True):
            results.append(measure_size(net, backbone, cfg, size, n, it, args.seed, bar))
    bar.close()
    out = Path(args.out)
    settings = {
        "model": str(model), "loss": cfg.as_dict(), "backbone": backbone.name, "seed": args.seed,
        "quick": bool(args.quick), "threads": torch.get_num_threads(),
        "lbfgs": "optimize_image(method='masked', init='content'), strong-Wolfe line search, clamp to [0, 1] after each iteration",
        "data": "wild renders (content, ground-truth label maps) and one indoor render of another draw (style)",
        "command": command_line("objective", args),
    }
    write_json(out / "objective.json", {
        "settings": settings, "sizes": json_safe(results),
        "note": "equivalent_iterations null = the feed-forward loss was never reached within 'iters'",
    })
    lines = [
        "# Objective: feed-forward output vs projected L-BFGS on the same objective",
        "",
        f"Training objective of the purifier (α {cfg.alpha:g}, β {cfg.beta:g}, θ {cfg.theta:g}, {backbone.name} loss network, "
        f"hard label-map regions) for the shipped purifier's output and after each L-BFGS iteration started from the input; "
        f"{n} wild renders per size, seed {args.seed}. 'Equivalent iterations' = first iteration whose loss ≤ the "
        "feed-forward loss (0: the input itself already scores as well).",
        "",
        "| size | images | L-BFGS iterations run | input loss (it. 0) | feed-forward loss | L-BFGS loss at the last iteration | equivalent iterations per image | median | feed-forward s | L-BFGS s / iteration |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ims = r["images"]
        h, w = r["size"]
        per = ", ".join(format_iterations(im["equivalent_iterations"], r["iters"]) for im in ims)
        lines.append(
            f"| {h}×{w} | {len(ims)} | {r['iters']} "
            f"| {np.median([im['lbfgs_total'][0] for im in ims]):.4g} "
            f"| {np.median([im['feed_forward']['total'] for im in ims]):.4g} "
            f"| {np.median([im['lbfgs_total'][-1] for im in ims]):.4g} | {per} "
            f"| {format_iterations(r['median_equivalent_iterations'], r['iters'])} "
            f"| {np.median([im['feed_forward_seconds'] for im in ims]):.3f} "
            f"| {np.median([im['lbfgs_seconds_per_iteration'] or np.nan for im in ims]):.3f} |"
        )
    lines += ["", "Losses are medians over the images; per-image curves are in objective.json.", ""]
    table = "\n".join(lines)
    write_text(out / "objective.md", table)
    figure(results, out / "objective_curves.png")
    head = "; ".join(
        f"{r['size'][0]}×{r['size'][1]}: {format_iterations(r['median_equivalent_iterations'], r['iters'])}"
        for r in results
    )
    return table + f"\nthe feed-forward output equals N L-BFGS iterations (median over images): {head}"
