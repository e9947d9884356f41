"""`eyepurify bench paired`: purification quality on paired renders.

The same parameter draw rendered ``wild`` (input) and ``indoor`` (target): a purifier
should map the first to the second. Reports PSNR/SSIM to the target, the share of draws whose
iris colour family (:func:`eyepurify.bench.look.iris_colour_class`) is the target's, and, with a
segmenter, the pupil-centre shift of the output against the ground-truth label map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.bench.classical import histogram_match, reference_stats, reinhard
from eyepurify.bench.metrics import psnr, ssim

PSNR_CAP = 100.0  # dB; identical images have infinite PSNR

PurifyFn = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


@dataclass
class PairedSet:
    """wild inputs, indoor targets (uint8 N×H×W×3), ground-truth labels (N×H×W), style refs."""

    wild: list[np.ndarray]
    indoor: list[np.ndarray]
    labels: list[np.ndarray]


def render_pairs(n: int, size: tuple[int, int], seed: int, profile: str = "v1") -> PairedSet:
    """``n`` paired renders (indoor/wild of the same draw) at ``size``, wild ``profile`` v1 or v2."""
    from eyepurify.data.render import render_pair, sample_params

    rng = np.random.default_rng(seed)
    wild, indoor, labels = [], [], []
    for _ in range(n):
        a, b = render_pair(sample_params(rng), size, rng=rng, profile=profile)
        indoor.append(a.image)
        wild.append(b.image)
        labels.append(a.labels)
    return PairedSet(wild, indoor, labels)  # type: ignore[arg-type]


def load_pairs(root: str | Path, limit: int | None = None) -> PairedSet:
    """Paired renders written by ``eyepurify render --domain both`` (root/indoor, root/wild)."""
    from eyepurify.data.render_folder import load_pairs as load_render_pairs

    p = load_render_pairs(root, limit=limit)
    return PairedSet(list(p.wild), list(p.indoor), list(p.labels))


def classical_methods(style_images: Sequence[np.ndarray]) -> dict[str, PurifyFn]:
    ref = reference_stats(list(style_images))
    return {
        "histogram matching": lambda ims, labs: [histogram_match(im, ref) for im in ims],
        "Reinhard": lambda ims, labs: [reinhard(im, ref) for im in ims],
    }


def _mean_std(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return (float(a.mean()), float(a.std())) if a.size else (float("nan"), float("nan"))


def evaluate(
    methods: dict[str, PurifyFn],
    data: PairedSet,
    segment: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    batch: int = 64,
    keep: dict[str, list[np.ndarray]] | None = None,
    n_keep: int = 6,
) -> list[dict[str, Any]]:
    """One row per method (plus "raw (no purification)"): PSNR, SSIM, pupil shift, time.

    ``keep``: when given, filled with the first ``n_keep`` outputs of each method.
    """
    from eyepurify.bench.look import iris_colour_class
    from eyepurify.labels import pupil_center

    rows = []
    gt_centres = [pupil_center(lab) for lab in data.labels]
    target_class = [iris_colour_class(t, lab) for t, lab in zip(data.indoor, data.labels, strict=True)]
    all_methods: dict[str, PurifyFn] = {"raw (no purification)": lambda ims, labs: list(ims), **methods}
    for name, fn in all_methods.items():
        outs: list[np.ndarray] = []
        t0 = time.perf_counter()
        for s in range(0, len(data.wild), batch):
            outs += fn(data.wild[s : s + batch], data.labels[s : s + batch])
        dt = (time.perf_counter() - t0) / max(1, len(outs))
        if keep is not None:
            keep[name] = outs[:n_keep]
        ps = [min(psnr(o, t), PSNR_CAP) for o, t in zip(outs, data.indoor, strict=True)]
        ss = [ssim(o, t) for o, t in zip(outs, data.indoor, strict=True)]
        kept = [iris_colour_class(o, lab) == c for o, lab, c in zip(outs, data.labels, target_class, strict=True) if c is not None]
        row: dict[str, Any] = {
            "method": name, "n": len(outs),
            "psnr": _mean_std(ps), "ssim": _mean_std(ss), "ms_per_image": 1000 * dt,
            "iris_class_kept": float(np.mean(kept)) if kept else float("nan"),
        }
        if segment is not None:
            shifts, missing = [], 0
            for lab_pred, gt in zip(segment(outs), gt_centres, strict=True):
                if gt is None:
                    continue
                c = pupil_center(lab_pred)
                if c is None:
                    missing += 1
                    continue
                shifts.append(float(np.hypot(*(np.asarray(c) - gt))))
            w = data.wild[0].shape[1]
            row["pupil_shift_px"] = _mean_std(shifts)
            row["pupil_shift_pct_width"] = _mean_std([100 * s / w for s in shifts])
            row["no_pupil_found"] = missing
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows from :func:`evaluate` as a Markdown table (mean ± std)."""
    has_pupil = any("pupil_shift_px" in r for r in rows)
    head = ("| method | PSNR (dB) ↑ | SSIM ↑ | iris colour kept ↑ |" + (" pupil shift (px) ↓ | no pupil found |" if has_pupil else "")
            + " ms/image |")
    sep = "|---|---|---|---|" + ("---|---|" if has_pupil else "") + "---|"
    lines = [head, sep]
    for r in rows:
        p, s = r["psnr"], r["ssim"]
        cells = [str(r["method"]), f"{p[0]:.2f} ± {p[1]:.2f}", f"{s[0]:.3f} ± {s[1]:.3f}",
                 f"{100 * float(r.get('iris_class_kept', float('nan'))):.0f} %"]
        if has_pupil:
            ps = r.get("pupil_shift_px", (float("nan"), float("nan")))
            cells += [f"{ps[0]:.2f} ± {ps[1]:.2f}", str(r.get("no_pupil_found", ""))]
        cells.append(f"{r['ms_per_image']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def header_lines(name: str, width: int, font_scale: float = 0.6) -> list[str]:
    """``name`` wrapped into lines no wider than ``width`` px in the sheet's font (a word
    longer than that is split)."""
    import cv2

    def fits(t: str) -> bool:
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_PLAIN, font_scale, 1)[0][0] <= width - 2

    lines: list[str] = []
    for word in name.split():
        while not fits(word) and len(word) > 1:
            k = max(1, max(i for i in range(1, len(word) + 1) if fits(word[:i]) or i == 1))
            if lines and fits(lines[-1] + " " + word[:k]):
                lines[-1] += " " + word[:k]
            else:
                lines.append(word[:k])
            word = word[k:]
        if lines and fits(lines[-1] + " " + word):
            lines[-1] += " " + word
        elif word:
            lines.append(word)
    return lines or [""]


def sample_sheet(data: PairedSet, outputs: dict[str, list[np.ndarray]], scale: int = 2) -> np.ndarray:
    """uint8 sheet: one column per method (input first, target last), one row per image."""
    import cv2

    cols = list(outputs.items()) + [("indoor target", data.indoor[: len(next(iter(outputs.values())))])]
    h, w = data.wild[0].shape[:2]
    heads = [header_lines(name, w) for name, _ in cols]
    header = 4 + 10 * max(len(lines) for lines in heads)
    n = len(cols[0][1])
    sheet = np.full((header + n * (h + 2), len(cols) * (w + 2), 3), 255, np.uint8)
    for j, (_, ims) in enumerate(cols):
        for k, line in enumerate(heads[j]):  # the whole name, wrapped to the column (never cut off)
            cv2.putText(sheet, line, (j * (w + 2) + 1, 10 + 10 * k), cv2.FONT_HERSHEY_PLAIN, 0.6, (0, 0, 0), 1)
        for i, im in enumerate(ims):
            y, x = header + i * (h + 2), j * (w + 2)
            sheet[y : y + h, x : x + w] = im
    return np.repeat(np.repeat(sheet, scale, 0), scale, 1)
