"""Optimisation-based purification on paired renders: which loss backbone works best?

Usage: OMP_NUM_THREADS=1 python benchmarks/optimization_paired.py [--n 6] [--size 48x80]
           [--iters 100] [--seed 0] [--no-vgg19] [--out benchmarks/results/optimization]

N seeded cases (``eyepurify.bench.optimization.paired_cases``): the wild render of a draw is
the content, the indoor render of another draw (with its label map) the style, the indoor
render of the same draw the target. Runs ``gatys`` and ``masked`` (init = content) with
ImageNet Lite0, random-weight Lite0 (``random``, a control) and, unless ``--no-vgg19``,
random-weight VGG-19 (no ImageNet VGG-19 weights exist here). Writes ``paired.json`` (rows,
per-image records, settings), ``paired.md`` (the table) and ``paired_sheet.png`` (inputs,
styles, outputs per row, targets).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from eyepurify.bench.optimization import (
    FEATURE_LAYER,
    contact_sheet,
    markdown_table,
    paired_cases,
    run_paired_optimization,
    score_outputs,
)
from eyepurify.io import write_image, write_json, write_text
from eyepurify.models.backbones import VGG19Backbone, create_backbone


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--size", default="48x80", help="HxW")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-vgg19", action="store_true", help="skip the (slow) random-weight VGG-19")
    p.add_argument("--out", default="benchmarks/results/optimization")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(args.seed)

    cases = paired_cases(args.n, (h, w), args.seed)
    lite0 = create_backbone("lite0")
    random_lite0 = create_backbone("random", seed=args.seed)
    backbones = {"lite0": lite0, "random": random_lite0}
    if not args.no_vgg19:
        backbones["vgg19_random"] = VGG19Backbone(state=None, seed=args.seed)
    features = {"lite0": lite0, "random": random_lite0}

    start = time.perf_counter()
    rows, outputs = run_paired_optimization(
        cases, backbones, features, methods=("gatys", "masked"), iters=args.iters, init="content", seed=args.seed,
    )
    fit_check = {"name": "target itself (pupil-fit check)", "method": "target", "backbone": None,
                 "backbone_is_random": False, "n": len(cases)}
    fit_check.update(score_outputs([c.target for c in cases], cases, features))
    rows.append(fit_check)
    total = time.perf_counter() - start

    out = Path(args.out)
    command = "OMP_NUM_THREADS=1 python benchmarks/optimization_paired.py " + " ".join(argv or sys.argv[1:])
    write_json(out / "paired.json", {
        "command": command.strip(),
        "n": args.n, "size": [h, w], "iters": args.iters, "init": "content", "seed": args.seed,
        "regions": "union (iris ∪ pupil)",
        "feature_distance": f"mean squared difference of {FEATURE_LAYER} activations "
                            "(lite0: ImageNet Lite0 blocks.3.expand; random: seeded random Lite0, same tap)",
        "pupil_fit": "eyepurify.bench.optimization.fit_dark_pupil (Otsu dark class inside the GT iris)",
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "total_seconds": total,
        "rows": rows,
    })
    heading = f"# Optimisation-based purification per loss network (paired renders, {args.size})\n\n"
    write_text(out / "paired.md", heading + markdown_table(rows, "lite0"))
    columns = {"input (wild)": [c.content for c in cases], "style": [c.style for c in cases]}
    columns.update({k: v for k, v in outputs.items() if k != "raw input"})
    columns["target (indoor)"] = [c.target for c in cases]
    write_image(out / "paired_sheet.png", contact_sheet(columns, scale=2))
    print(markdown_table(rows, "lite0"))
    print(f"wrote {out}/paired.json, paired.md, paired_sheet.png in {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
