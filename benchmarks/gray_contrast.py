"""Sclera−iris luminance contrast of gray eye patches, raw vs purified, against renders.

usage: OMP_NUM_THREADS=2 python benchmarks/gray_contrast.py [--data ../shared/data/mpiigaze_patches]
           [--models shipped=default gray=PATH ...] [--out benchmarks/results/gray_contrast]

Gaze estimators read the eye from the contrast between the white sclera and the dark iris.
For each patch (resized to 36×60) the shipped segmenter labels the raw patch (orphan fix
on); contrast = median luminance (BT.601 Y, 0–255) of its sclera pixels minus that of its
iris pixels, the same regions scored on every version of the patch. Renders (indoor, the
synthetic style) are scored with their true labels. Prints median and mean over patches
with both regions, and the image standard deviation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from eyepurify.imaging import resize_image
from eyepurify.io import list_images, read_image, write_json, write_text
from eyepurify.purify import Purifier
from eyepurify.sample import IRIS, SCLERA
from eyepurify.segment import Segmenter


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def contrast(images: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    c, sd = [], []
    for im, lab in zip(images, labels, strict=True):
        y = luminance(im)
        sd.append(float(y.std()))
        if (lab == SCLERA).sum() >= 3 and (lab == IRIS).sum() >= 3:
            c.append(float(np.median(y[lab == SCLERA]) - np.median(y[lab == IRIS])))
    return {"contrast_median": float(np.median(c)), "contrast_mean": float(np.mean(c)), "n": len(c),
            "std_mean": float(np.mean(sd))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mpiigaze_patches"))
    ap.add_argument("--models", nargs="*", default=["shipped=default"], help="name=path (default: the shipped purifier)")
    ap.add_argument("--renders", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/gray_contrast")
    args = ap.parse_args()

    files = list_images(args.data)
    if not files:
        print(f"no patches in {args.data}", file=sys.stderr)
        return 2
    patches = [resize_image(read_image(f), (36, 60)) for f in files]
    seg = Segmenter.from_pretrained()
    labels = seg.predict(patches)
    rows = {"raw": contrast(patches, labels)}
    for spec in args.models:
        name, path = spec.split("=", 1)
        pur = Purifier.from_pretrained(None if path == "default" else path, segmenter=seg)
        out = pur.purify_arrays(patches, labels)
        rows[f"purified: {name}"] = contrast(out, labels)
    from eyepurify.data.render import render_batch, sample_params

    rng = np.random.default_rng(5)
    rend = render_batch([sample_params(rng) for _ in range(args.renders)], (36, 60), "indoor")
    gray = [np.repeat(luminance(s.image).round().clip(0, 255).astype(np.uint8)[..., None], 3, -1) for s in rend]
    rows["indoor renders (true labels)"] = contrast(gray, [s.labels for s in rend])  # type: ignore[misc]
    lines = [f"{len(files)} gray patches of {args.data} at 36×60; regions from the shipped segmenter on the raw patch", "",
             "| images | sclera − iris, median (grey levels) | mean | patches scored | image std |", "|---|---|---|---|---|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {r['contrast_median']:.1f} | {r['contrast_mean']:.1f} | {r['n']} | {r['std_mean']:.1f} |")
        print(f"{k}: contrast median {r['contrast_median']:.1f}, mean {r['contrast_mean']:.1f} (n={r['n']}), std {r['std_mean']:.1f}")
    out = Path(args.out)
    write_json(out / "gray_contrast.json", {"command": " ".join(["python", *sys.argv]), "rows": rows, "n_patches": len(files)})
    write_text(out / "gray_contrast.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
