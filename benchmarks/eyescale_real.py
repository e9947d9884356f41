"""Eye-scale normalisation on real photos: the shipped defaults with it on and off.

usage: OMP_NUM_THREADS=2 python benchmarks/eyescale_real.py [--data ../shared/data/real_eyes_seg]
           [--every 1] [--out benchmarks/results/eyescale] [--sheet /tmp/eyescale_sheet.png]

For each setting the photos are purified at their own size (640×480) with the shipped
purifier and segmenter, then the raw and the purified photos are segmented with the shipped
segmenter, as a user running `eyepurify purify` then `eyepurify segment` would. Reports
mIoU over iris and pupil and the pupil-centre error (centroid of the predicted vs the true
pupil, % of the true eye width, over masks that have a pupil). The contact sheet (research-
only photos) goes to --sheet, outside the repo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from eyepurify.eyescale import eye_box
from eyepurify.imaging import resize_image
from eyepurify.io import list_images, read_image, read_mask, write_json, write_text
from eyepurify.purify import Purifier
from eyepurify.segment import Segmenter


def scores(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    ious = {}
    for name, c in (("iris", 2), ("pupil", 3)):
        v = [((p == c) & (g == c)).sum() / ((p == c) | (g == c)).sum() for p, g in zip(preds, gts, strict=True) if (g == c).any()]
        ious[name] = float(np.mean(v))
    errs = []
    for p, g in zip(preds, gts, strict=True):
        if not (g == 3).any():
            continue
        box = eye_box(g)
        width = box[2] - box[0] if box else g.shape[1]
        gy, gx = np.argwhere(g == 3).mean(0)
        if (p == 3).any():
            py, px = np.argwhere(p == 3).mean(0)
        else:
            py, px = (g.shape[0] - 1) / 2, (g.shape[1] - 1) / 2  # no pupil predicted: the image centre
        errs.append(100 * float(np.hypot(px - gx, py - gy)) / width)
    return {"miou": (ious["iris"] + ious["pupil"]) / 2, **ious, "pupil_err_median": float(np.median(errs)),
            "pupil_err_mean": float(np.mean(errs)), "n_pupil": len(errs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real_eyes_seg"))
    ap.add_argument("--every", type=int, default=1, help="use every k-th photo")
    ap.add_argument("--out", default="benchmarks/results/eyescale")
    ap.add_argument("--sheet", default="/tmp/eyescale_sheet.png")
    args = ap.parse_args()
    files = list_images(Path(args.data) / "images")[:: args.every]
    if not files:
        print(f"no photos under {args.data}/images", file=sys.stderr)
        return 2
    images = [read_image(f) for f in files]
    gts = [read_mask(Path(args.data) / "masks" / (f.stem + ".png"), im.shape[:2]) for f, im in zip(files, images, strict=True)]

    settings = {
        "eye scale off (before)": dict(eye_scale=False, seg=dict(eye_scale=False)),
        "eye scale on (default)": dict(eye_scale=True, seg=dict()),
    }
    rows, sheets = {}, {}
    for name, s in settings.items():
        seg = Segmenter.from_pretrained(**s["seg"])
        pur = Purifier.from_pretrained(segmenter=seg, eye_scale=s["eye_scale"])
        t = time.perf_counter()
        purified = pur.purify_arrays(images)
        t_pur = time.perf_counter() - t
        raw_pred, pur_pred = seg.predict(images), seg.predict(purified)
        rows[name] = {"raw": scores(raw_pred, gts), "purified": scores(pur_pred, gts), "purify_s_per_photo": t_pur / len(images)}
        sheets[name] = purified
        r = rows[name]
        print(f"{name}: mIoU raw {r['raw']['miou']:.3f} -> purified {r['purified']['miou']:.3f}; "
              f"pupil error median {r['raw']['pupil_err_median']:.2f} -> {r['purified']['pupil_err_median']:.2f} % of eye width "
              f"(mean {r['raw']['pupil_err_mean']:.2f} -> {r['purified']['pupil_err_mean']:.2f}, {r['raw']['n_pupil']} with a pupil)")

    pick = list(range(0, len(images), max(1, len(images) // 6)))[:6]
    tile = [np.concatenate([resize_image(x, (240, 320)) for x in (images[i], *(sheets[n][i] for n in settings))], 1) for i in pick]
    cv2.imwrite(args.sheet, np.concatenate(tile, 0)[..., ::-1])
    out = Path(args.out)
    result = {"data": str(args.data), "photos": len(images), "every": args.every, "rows": rows,
              "command": " ".join(["python", *sys.argv])}
    write_json(out / "eyescale.json", result)
    md = ["| setting | mIoU raw | mIoU purified | Δ | pupil err. median raw → purified (% eye width) | mean raw → purified |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        a, b = r["raw"], r["purified"]
        md.append(f"| {name} | {a['miou']:.3f} | {b['miou']:.3f} | {b['miou'] - a['miou']:+.3f} | "
                  f"{a['pupil_err_median']:.2f} → {b['pupil_err_median']:.2f} | {a['pupil_err_mean']:.2f} → {b['pupil_err_mean']:.2f} |")
    write_text(out / "eyescale.md", f"{len(images)} photos of real_eyes_seg ({rows[name]['raw']['n_pupil']} with a pupil), shipped purifier and segmenter, `{result['command']}`\n\n" + "\n".join(md) + "\n")
    print(f"sheet (rows: photo | purified, eye scale off | on): {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
