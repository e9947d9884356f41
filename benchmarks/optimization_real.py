"""Qualitative check of optimisation-based purification on real eye photos.

Usage: OMP_NUM_THREADS=1 python benchmarks/optimization_real.py [--data ../shared/data]
           [--n 4] [--size 96x128] [--iters 100] [--backbone lite0] [--out benchmarks/results/optimization]

Takes ``--n`` real photos of ``real_eyes_seg`` whose mask has an iris and a pupil, evenly
spaced in natural name order, and as the style the first ``unityeyes_seg`` render (same
order) with a 4:3 frame, no black rotation fill in its corners and an iris and a pupil in
its mask; resizes all to ``--size`` (images
area-averaged, masks nearest) and runs ``gatys`` and ``masked`` (init = content, union
attention). Writes ``real_sheet.png`` (research-only data: git-ignored, never commit it)
and ``real.json`` (file stems and derived numbers only: objective, iterations, time, and
the pupil-centre shift of the dark-blob fit against the mask's pupil centre).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from eyepurify.bench.optimization import PairedCase, contact_sheet, fit_dark_pupil, optimize_case
from eyepurify.imaging import resize_image, resize_labels
from eyepurify.io import list_images, read_image, read_mask, write_image, write_json
from eyepurify.labels import colorize, pupil_center
from eyepurify.models.backbones import create_backbone
from eyepurify.sample import IRIS, PUPIL

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _natural(p: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem))


def _has_eye(mask_path: Path) -> bool:
    mask = read_mask(mask_path)
    return bool((mask == IRIS).any() and (mask == PUPIL).any())


def _pick_spread(folder: Path, n: int) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """``n`` (path, image, mask), evenly spaced in natural name order over the files whose
    mask has an iris and a pupil (neighbouring files are often frames of one video)."""
    paths = [p for p in sorted(list_images(folder / "images"), key=_natural)
             if _has_eye(folder / "masks" / f"{p.stem}.png")]
    if len(paths) < n:
        return []
    picked = []
    for i in np.linspace(0, len(paths) - 1, n).round().astype(int):
        image = read_image(paths[i])
        picked.append((paths[i], image, read_mask(folder / "masks" / f"{paths[i].stem}.png", shape=image.shape[:2])))
    return picked


def _pick_style(folder: Path) -> tuple[Path, np.ndarray, np.ndarray] | None:
    """First render (natural order) with a 4:3 frame, no black fill in its corners (rotated
    renders have it) and an iris and a pupil in its mask."""
    for path in sorted(list_images(folder / "images"), key=_natural):
        image = read_image(path)
        h, w = image.shape[:2]
        corners = image[[0, 0, -1, -1], [0, -1, 0, -1]]
        if 3 * w != 4 * h or corners.max(axis=1).min() < 16:
            continue
        mask = read_mask(folder / "masks" / f"{path.stem}.png", shape=(h, w))
        if (mask == IRIS).any() and (mask == PUPIL).any():
            return path, image, mask
    return None


def _resize(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return resize_image(image, size), resize_labels(mask, size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--size", default="96x128", help="HxW")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/optimization")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    data = Path(args.data)
    if not (data / "real_eyes_seg").is_dir():
        print(f"{data / 'real_eyes_seg'} is absent (research-only data, not shipped); nothing to do")
        return 2
    reals = _pick_spread(data / "real_eyes_seg", args.n)
    style = _pick_style(data / "unityeyes_seg")
    if len(reals) < args.n or style is None:
        print(f"{data}: found {len(reals)} of {args.n} real images with iris and pupil masks and "
              f"{'a' if style else 'no'} usable style render (check the data folder)")
        return 2
    style_path, style_im, style_mask = style
    style_im, style_mask = _resize(style_im, style_mask, size)  # type: ignore[arg-type]
    net = create_backbone(args.backbone, seed=args.seed)
    torch.manual_seed(args.seed)

    columns: dict[str, list[np.ndarray]] = {"real input": [], "mask": [], "gatys": [], "masked": [], "style": []}
    records = []
    start = time.perf_counter()
    for path, image, mask in reals:
        im, lab = _resize(image, mask, size)  # type: ignore[arg-type]
        case = PairedCase(im, im, lab, style_im, style_mask)
        gt = pupil_center(lab)
        rec: dict[str, object] = {"content": path.name, "mask_pupil_center": None if gt is None else gt.tolist()}
        fit_in = fit_dark_pupil(im, lab)
        rec["input_pupil_shift_px"] = None if gt is None or fit_in is None else float(np.hypot(*(fit_in - gt)))
        columns["real input"].append(im)
        columns["mask"].append(colorize(lab))
        for method in ("gatys", "masked"):
            out, run = optimize_case(case, net, method, args.iters, "content", args.seed)
            fit = fit_dark_pupil(out, lab)
            run["pupil_shift_px"] = None if gt is None or fit is None else float(np.hypot(*(fit - gt)))
            run["mean_abs_change"] = float(np.abs(out.astype(np.float64) - im).mean())
            rec[method] = run
            columns[method].append(out)
        columns["style"].append(style_im)
        records.append(rec)
        print(f"{path.name}: gatys {rec['gatys']['stop_reason']}, masked {rec['masked']['stop_reason']}")  # type: ignore[index]
    out_dir = Path(args.out)
    write_image(out_dir / "real_sheet.png", contact_sheet(columns, scale=2))
    write_json(out_dir / "real.json", {
        "command": ("OMP_NUM_THREADS=1 python benchmarks/optimization_real.py " + " ".join(argv or sys.argv[1:])).strip(),
        "backbone": net.name, "backbone_is_random": bool(net.is_random), "size": list(size),
        "iters": args.iters, "init": "content", "regions": "union (iris ∪ pupil)", "seed": args.seed,
        "style": style_path.name, "total_seconds": time.perf_counter() - start,
        "note": "derived numbers only; the sheet real_sheet.png shows research-only data and is git-ignored",
        "images": records,
    })
    print(f"wrote {out_dir}/real_sheet.png (git-ignored) and real.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
