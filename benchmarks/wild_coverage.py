"""How close the renderer's wild domain comes to real eye images: v1 vs v2, side by side.

usage: OMP_NUM_THREADS=2 python benchmarks/wild_coverage.py [--data ../shared/data] [--n 300]
           [--n-columbia 400] [--seed 0] [--pca-dims 32] [--boot 200]
           [--out benchmarks/results/wild_coverage] [--no-sheet]

Real sets, each at the scale the purifier sees it:
- ``real_eyes_seg``: 640×480 colour photos cut to the canonical eye crop (72×120, the eye
  ~63 % of the width) with their ground-truth masks (``eyescale.eye_box`` → ``canonical_box``
  at ``EyeScale.for_renders((72, 120))`` → ``crop``).
- ``mpiigaze_patches``: gray 35×55 patches resized to 36×60; renders at 36×60 in gray.
- ``columbia_gaze``: 64×64 colour crops (1.5× the eye-landmark box, so the eye is ~67 % of
  the width, close to the canonical 63 %): the central 38×64 band resized to 36×60, in
  colour; renders at 36×60 in colour. ``bad_crop`` rows are skipped.

Synthetic sets: draws ``draw_params(seed + k, i)`` with wild randomness
``default_rng([seed + k, i, 1])`` (exactly ``eyepurify render --seed``), rendered indoor,
wild v1 and wild v2 (same draws), for k = 0 .. ``--render-seeds`` − 1.

Distance: ``eyepurify.bench.domain``'s ImageNet Lite0 pooled features (720-d) projected by a
PCA (``--pca-dims``) fitted on the union of every set compared with that real set (so the
rows of one real set share one space), Fréchet distance in that space. 36×60 images are
resized to 72×120 before the features (as ``bench domain`` does for MPIIGaze). Also: the
split-half FD of each set (noise floor), a balanced logistic-regression real-vs-synthetic
accuracy, and a paired bootstrap over the real images of FD(v1) − FD(v2).

Writes ``wild_coverage.md`` / ``.json`` and (unless ``--no-sheet``) ``sheet.png``: real |
wild v1 | wild v2 | indoor rows. The sheet shows research-only real images: it is
git-ignored, never commit it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from eyepurify.bench.domain import (
    domain_classifier_accuracy,
    fit_pca,
    frechet_distance,
    pooled_features,
    split_half_fd,
    to_gray3,
)
from eyepurify.data.render import draw_params, render_domains_batch
from eyepurify.eyescale import EyeScale, canonical_box, crop, eye_box
from eyepurify.imaging import resize_image
from eyepurify.io import list_images, read_image, read_mask, write_image, write_json, write_text

EYE = (72, 120)
PATCH = (36, 60)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_eye_crops(root: Path, limit: int | None, seed: int) -> list[np.ndarray]:
    """Canonical 72×120 eye crops of real_eyes_seg photos (ground-truth masks)."""
    files = list_images(root / "images")
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.sort(np.random.default_rng(seed).choice(len(files), limit, replace=False))]
    scale = EyeScale.for_renders(EYE)
    out = []
    for f in files:
        box = eye_box(read_mask(root / "masks" / f"{f.stem}.png"))
        if box is not None:
            out.append(crop(read_image(f), canonical_box(box, scale), EYE))
    return out


def mpiigaze(root: Path, limit: int | None, seed: int) -> list[np.ndarray]:
    """Gray MPIIGaze patches resized to 36×60 (three equal channels)."""
    files = list_images(root)
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.sort(np.random.default_rng(seed).choice(len(files), limit, replace=False))]
    return to_gray3([resize_image(read_image(f), PATCH) for f in files])


def columbia(root: Path, limit: int, seed: int) -> list[np.ndarray]:
    """Columbia crops: the central 38×64 band (the canonical aspect) resized to 36×60."""
    with open(root / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("bad_crop", "0") != "1"]
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), min(limit, len(rows)), replace=False))
    out = []
    for i in pick:
        img = read_image(root / rows[i]["file"])
        h, w = img.shape[:2]
        bh = round(w * PATCH[0] / PATCH[1])
        y0 = (h - bh) // 2
        out.append(resize_image(np.ascontiguousarray(img[y0 : y0 + bh]), PATCH))
    return out


def renders(n: int, size: tuple[int, int], seed: int) -> dict[str, list[np.ndarray]]:
    """{indoor, wild v1, wild v2}: n draws of ``eyepurify render --seed seed`` at ``size``."""
    params = [draw_params(seed, i) for i in range(n)]
    out: dict[str, list[np.ndarray]] = {}
    for profile in ("v1", "v2"):
        rngs = [np.random.default_rng([seed, i, 1]) for i in range(n)]
        domains = ["indoor", "wild"] if profile == "v1" else ["wild"]
        res = render_domains_batch(params, size, domains, None, rngs, profile=profile)  # type: ignore[arg-type]
        if profile == "v1":
            out["indoor"] = [r[0][0].image for r in res]
        out[f"wild {profile}"] = [r[-1][0].image for r in res]
    return out


def stats(images: list[np.ndarray]) -> dict[str, float]:
    """Mean over images of: luminance mean and spread (std), chroma, fine detail."""
    y, sd, ch, hf = [], [], [], []
    for im in images:
        f = im.astype(np.float32)
        lum = f @ np.array([0.299, 0.587, 0.114], np.float32)
        y.append(lum.mean())
        sd.append(lum.std())
        ch.append(np.abs(f - lum[..., None]).mean())
        hf.append(np.abs(cv2.Laplacian(lum, cv2.CV_32F)).mean())
    return {"lum": float(np.mean(y)), "lum_std": float(np.mean(sd)), "chroma": float(np.mean(ch)),
            "detail": float(np.mean(hf))}


def boot_diff(real: np.ndarray, a: np.ndarray, b: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    """95 % interval of FD(real*, a) − FD(real*, b) over bootstrap resamples real* of the real rows."""
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(n):
        r = real[rng.integers(0, len(real), len(real))]
        d.append(frechet_distance(r, a) - frechet_distance(r, b))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def compare(name: str, real: list[np.ndarray], synth: dict[str, list[np.ndarray]], gray: bool, backbone,  # type: ignore[no-untyped-def]
            pca_dims: int, seed: int, boot: int, note: str) -> dict[str, object]:
    def feats(ims: list[np.ndarray]) -> np.ndarray:
        ims = to_gray3(ims) if gray else ims
        if ims[0].shape[:2] != EYE:
            ims = [resize_image(im, EYE) for im in ims]
        return pooled_features(ims, backbone)

    fr = feats(real)
    fs = {k: feats(v) for k, v in synth.items()}
    union = np.concatenate([fr, *fs.values()])
    mean, comp = fit_pca(union, pca_dims)
    pr = (fr - mean) @ comp
    ps = {k: (f - mean) @ comp for k, f in fs.items()}
    rows = []
    for k, p in ps.items():
        rows.append({"set": k, "n": len(p), "fd": frechet_distance(pr, p), "fd_halves": split_half_fd(p, seed),
                     "accuracy": domain_classifier_accuracy(pr, p, seed),
                     "stats": stats(to_gray3(synth[k]) if gray else synth[k])})
    seeds = sorted({k.split("#")[1] for k in ps if "#" in k})
    diffs = {}
    for s in seeds:
        diffs[s] = boot_diff(pr, ps[f"wild v1#{s}"], ps[f"wild v2#{s}"], boot, seed)
    return {"name": name, "n_real": len(real), "gray": gray, "note": note, "pca_dims": int(comp.shape[1]),
            "pca_variance_kept": float(((union - mean) @ comp).var(0).sum() / union.var(0).sum()),
            "fd_real_halves": split_half_fd(pr, seed), "real_stats": stats(to_gray3(real) if gray else real),
            "rows": rows, "boot_v1_minus_v2": diffs}


def markdown(results: list[dict[str, object]]) -> str:
    out = []
    for r in results:
        rows = r["rows"]  # type: ignore[assignment]
        seeds = sorted({row["set"].split("#")[1] for row in rows})  # type: ignore[index]
        out.append(f"### {r['name']} ({r['n_real']} real, {'gray' if r['gray'] else 'colour'})\n\n{r['note']}\n")
        out.append("| set | " + " | ".join(f"FD (render seed {s})" for s in seeds)
                   + " | FD split-half | real-vs-set accuracy | lum | lum std | chroma | detail |")
        out.append("|---|" + "---|" * (len(seeds) + 6))
        rs = r["real_stats"]  # type: ignore[index]
        out.append("| real | " + " | ".join("—" for _ in seeds) + f" | {r['fd_real_halves']:.1f} | — | "
                   f"{rs['lum']:.0f} | {rs['lum_std']:.0f} | {rs['chroma']:.1f} | {rs['detail']:.1f} |")
        for kind in ("indoor", "wild v1", "wild v2"):
            mine = [row for row in rows if row["set"].split("#")[0] == kind]  # type: ignore[index]
            st = mine[0]["stats"]
            out.append(f"| {kind} | " + " | ".join(f"{m['fd']:.1f}" for m in mine)
                       + f" | {mine[0]['fd_halves']:.1f} | " + "/".join(f"{m['accuracy']:.2f}" for m in mine)
                       + f" | {st['lum']:.0f} | {st['lum_std']:.0f} | {st['chroma']:.1f} | {st['detail']:.1f} |")
        diffs = r["boot_v1_minus_v2"]  # type: ignore[index]
        out.append("\nFD(v1) − FD(v2), 95 % bootstrap interval over the real images: "
                   + "; ".join(f"seed {s}: [{lo:.1f}, {hi:.1f}]" for s, (lo, hi) in diffs.items()) + "\n")
    return "\n".join(out)


def sheet(blocks: list[tuple[str, list[list[np.ndarray]]]], cols: int = 8) -> np.ndarray:
    """Rows of ``cols`` images (each block's rows shown at 72×120), a label column on the left."""
    label_w = 110
    lines = []
    for name, rows in blocks:
        for k, (label, ims) in enumerate(zip(["real", "wild v1", "wild v2", "indoor"], rows, strict=False)):
            line = np.full((EYE[0], label_w + cols * EYE[1], 3), 255, np.uint8)
            cv2.putText(line, f"{name}" if k == 0 else "", (3, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(line, label, (3, 44), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            for c, im in enumerate(ims[:cols]):
                line[:, label_w + c * EYE[1] : label_w + (c + 1) * EYE[1]] = resize_image(im, EYE)
            lines.append(line)
        lines.append(np.full((6, lines[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(SHARED), help="the shared data folder")
    ap.add_argument("--n", type=int, default=300, help="renders per profile and render seed")
    ap.add_argument("--n-real", type=int, default=None, help="real_eyes_seg / MPIIGaze images at most (default all)")
    ap.add_argument("--n-columbia", type=int, default=400, help="Columbia crops (seeded subset)")
    ap.add_argument("--render-seeds", type=int, default=2, help="independent render sets (seed, seed + 1, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pca-dims", type=int, default=32)
    ap.add_argument("--boot", type=int, default=200, help="bootstrap resamples of the real set")
    ap.add_argument("--out", default="benchmarks/results/wild_coverage")
    ap.add_argument("--no-sheet", action="store_true", help="skip the contact sheet")
    args = ap.parse_args()

    import torch

    from eyepurify.models.backbones import create_backbone
    from eyepurify.models.backbones.base import flush_denormals

    data = Path(args.data)
    t0 = time.perf_counter()
    sets: list[tuple[str, list[np.ndarray], tuple[int, int], bool, str]] = []
    if (data / "real_eyes_seg").is_dir():
        sets.append(("real_eyes_seg canonical crops 72×120", real_eye_crops(data / "real_eyes_seg", args.n_real, args.seed),
                     EYE, False, "Photos cut to the canonical eye crop with their ground-truth masks; renders at 72×120."))
    if (data / "mpiigaze_patches").is_dir():
        sets.append(("MPIIGaze patches 36×60 gray", mpiigaze(data / "mpiigaze_patches", args.n_real, args.seed), PATCH, True,
                     "35×55 patches resized to 36×60; renders at 36×60 converted to gray; features at 72×120."))
    if (data / "columbia_gaze").is_dir():
        sets.append(("Columbia 36×60 colour", columbia(data / "columbia_gaze", args.n_columbia, args.seed), PATCH, False,
                     "central 38×64 band of the 64×64 crops resized to 36×60; renders at 36×60 in colour; "
                     "features at 72×120."))
    if not sets:
        print(f"no real data under {data}", file=sys.stderr)
        return 2
    backbone = create_backbone("lite0")
    results, blocks = [], []
    cache: dict[tuple[int, int], dict[str, list[np.ndarray]]] = {}
    with flush_denormals(), torch.inference_mode():
        for name, real, size, gray, note in sets:
            if size not in cache:
                cache[size] = {}
                for k in range(args.render_seeds):
                    for kind, ims in renders(args.n, size, args.seed + k).items():
                        cache[size][f"{kind}#{args.seed + k}"] = ims
            synth = cache[size]
            results.append(compare(name, real, synth, gray, backbone, args.pca_dims, args.seed, args.boot, note))
            print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            g = to_gray3 if gray else list
            s0 = f"#{args.seed}"
            pick = np.random.default_rng(args.seed).choice(len(real), 8, replace=False)
            blocks.append((name.split(" ")[0], [g([real[i] for i in pick]), g(synth["wild v1" + s0][:8]),
                                                 g(synth["wild v2" + s0][:8]), g(synth["indoor" + s0][:8])]))
    out = Path(args.out)
    settings = {
        "features": "ImageNet lite0 conv4_2+conv5_1 (blocks.5.expand + blocks.8.expand) global average pooled, 720-d",
        "pca_dims": args.pca_dims, "n": args.n, "render_seeds": [args.seed + k for k in range(args.render_seeds)],
        "seed": args.seed, "boot": args.boot, "threads": torch.get_num_threads(),
        "command": "python benchmarks/wild_coverage.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - t0, 1), "load_average": os.getloadavg()[0],
    }
    write_json(out / "wild_coverage.json", {"settings": settings, "sets": results})
    head = ("# Wild domain coverage: real eye images vs wild renders, v1 vs v2\n\n"
            f"Fréchet distance (lower = closer) on {settings['features']}, PCA-{args.pca_dims} fitted on the union of "
            "each real set and every synthetic set compared with it; split-half FD = noise floor; accuracy = "
            "balanced 5-fold logistic regression real vs set (0.5 = indistinguishable); lum / lum std / chroma / "
            "detail = mean luminance, its spread within an image, mean |RGB − Y|, mean |Laplacian| (0–255 units). "
            f"Command: `{settings['command']}`.\n\n")
    write_text(out / "wild_coverage.md", head + markdown(results))
    if not args.no_sheet:
        write_image(out / "sheet.png", sheet(blocks))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
