"""`eyepurify demo --out DIR`: render wild eyes, purify them with the shipped model, show a sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eyepurify.io import write_image, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="render wild eyes and purify them with the shipped model (before/after sheet)",
        description=(
            "Renders N indoor/wild pairs of the same eyes, purifies the wild ones with the "
            "shipped purifier (masks from the shipped segmenter), and writes DIR/sheet.png "
            "(rows: wild input, purified, indoor target of the same draw) plus the images."
        ),
    )
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="purifier model file (default: the shipped one)")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def _row(images: list[np.ndarray], pad: int = 2) -> np.ndarray:
    h = images[0].shape[0]
    sep = np.full((h, pad, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for im in images:
        parts += [im, sep]
    return np.concatenate(parts[:-1], axis=1)


def run(args: argparse.Namespace) -> int:
    from eyepurify.bench.metrics import psnr
    from eyepurify.bench.paired import render_pairs
    from eyepurify.purify import Purifier

    out = Path(args.out)
    data = render_pairs(max(1, args.n), (72, 120), args.seed)
    purifier = Purifier.from_pretrained(args.model)
    if purifier.segmenter is not None:
        masks, mask_source = purifier.predict_masks(data.wild), "predicted by the shipped segmenter"
    else:
        masks, mask_source = data.labels, "ground-truth render labels (no segmenter installed)"
    purified = purifier.purify_arrays(data.wild, masks)
    for i, (w, p, t) in enumerate(zip(data.wild, purified, data.indoor, strict=True)):
        write_image(out / "wild" / f"{i:03d}.png", w)
        write_image(out / "purified" / f"{i:03d}.png", p)
        write_image(out / "indoor" / f"{i:03d}.png", t)
    gap = np.full((4, 1, 3), 255, np.uint8)
    rows = [_row(data.wild), _row(purified), _row(data.indoor)]
    sheet = np.concatenate([rows[0], np.repeat(gap, rows[0].shape[1], 1), rows[1], np.repeat(gap, rows[0].shape[1], 1), rows[2]], 0)
    sheet = np.repeat(np.repeat(sheet, 2, 0), 2, 1)
    write_image(out / "sheet.png", sheet)
    raw = float(np.mean([psnr(w, t) for w, t in zip(data.wild, data.indoor, strict=True)]))
    pur = float(np.mean([psnr(p, t) for p, t in zip(purified, data.indoor, strict=True)]))
    write_json(out / "demo.json", {"n": len(purified), "masks": mask_source, "psnr_raw": raw, "psnr_purified": pur})
    print(f"masks: {mask_source}")
    print(f"sheet: {out / 'sheet.png'} (rows: wild input | purified | indoor target)")
    print(f"PSNR to the paired indoor render: raw {raw:.2f} dB, purified {pur:.2f} dB")
    return 0
