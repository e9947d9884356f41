"""Optimisation-based purification measured on paired renders (METHOD §7 and §10).

A case is one procedural draw rendered ``wild`` (the content I) and ``indoor`` (the target
an ideal purifier would produce), plus the ``indoor`` render of a *different* draw as the
style S (its label map is S's mask). :func:`run_paired_optimization` runs
``eyepurify.optimize.optimize_image`` for every (method, backbone) pair and scores the
outputs with :func:`score_outputs`:

* PSNR / SSIM to the paired target;
* feature distance to the target: mean over positions and channels of the squared
  difference of one backbone layer's activations (by default ImageNet Lite0 at the paper's
  ``conv3_2``, i.e. ``blocks.3.expand``);
* pupil-centre shift: distance (px) between the pupil centre of the input's ground-truth
  label map and the pupil fitted on the output by :func:`fit_dark_pupil`;
* the optimiser's final objective, iterations completed (with the stop reason when short of
  the request) and wall time per iteration.

Every function is pure (inputs are never edited); randomness comes from one seed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage

from eyepurify.bench.classical import histogram_match, reference_stats, reinhard
from eyepurify.bench.metrics import psnr, ssim
from eyepurify.labels import largest_component, pupil_center
from eyepurify.losses.regions import Regions
from eyepurify.losses.total import LossConfig
from eyepurify.optimize import FeatureBackbone, optimize_image
from eyepurify.sample import IRIS, PUPIL
from eyepurify.tensors import images_to_tensor, labels_to_tensor, tensor_to_images

#: Layer of the feature distance (paper name; Lite0 maps it to ``blocks.3.expand``).
FEATURE_LAYER = "conv3_2"


@dataclass(frozen=True)
class PairedCase:
    """One measurement case; all images uint8 H×W×3 RGB, label maps uint8 H×W (0..3).

    content: the wild render (input I). target: the indoor render of the same draw.
    labels: the draw's ground-truth label map (shared by content and target).
    style / style_labels: the indoor render of another draw and its label map (S).
    """

    content: np.ndarray
    target: np.ndarray
    labels: np.ndarray
    style: np.ndarray
    style_labels: np.ndarray


def paired_cases(n: int, size: tuple[int, int], seed: int = 0) -> list[PairedCase]:
    """``n`` cases at ``size`` (H, W) from one generator seeded with ``seed``.

    The first ``n`` draws give content/target pairs; the next ``n`` draws give the styles
    (case i uses style draw i), so no style shares a draw with any target.
    """
    from eyepurify.data.render import render_pair, sample_params

    if n < 1:
        raise ValueError(f"paired_cases needs n >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pairs = [render_pair(sample_params(rng), size, rng=rng) for _ in range(n)]
    styles = [render_pair(sample_params(rng), size, rng=rng)[0] for _ in range(n)]
    return [
        PairedCase(wild.image, indoor.image, indoor.labels, st.image, st.labels)  # type: ignore[arg-type]
        for (indoor, wild), st in zip(pairs, styles, strict=True)
    ]


def _otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a 1-D float sample (max between-class variance; ties: lowest)."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = v.size
    if n < 2 or v[0] == v[-1]:
        return float(v[-1]) if n else 0.0
    csum = np.cumsum(v)
    k = np.arange(1, n)  # split after k values: v[:k] dark, v[k:] bright
    m0 = csum[k - 1] / k
    m1 = (csum[-1] - csum[k - 1]) / (n - k)
    between = k * (n - k) * (m0 - m1) ** 2
    between[v[k - 1] == v[k]] = -1.0  # a split must fall between distinct values
    best = int(np.argmax(between))
    return float(v[best])


def fit_dark_pupil(image: np.ndarray, labels: np.ndarray, sigma: float = 0.7) -> np.ndarray | None:
    """Pupil centre (x, y) in px of ``image`` (uint8 H×W×3), searched inside the iris of ``labels``.

    The search region is the hole-filled iris ∪ pupil of the (ground-truth) label map. The
    luminance (Rec. 601, Gaussian-smoothed with ``sigma`` px) inside it is split into a dark
    and a bright class by Otsu's threshold (chosen from the data, no fixed level); the
    largest 8-connected dark component is the pupil. Its centre comes from
    :func:`eyepurify.labels.pupil_center` on a label map with that component as pupil and
    the rest of the region as iris (ellipse fit on the pupil/iris border, else centroid).
    None when the labels have no iris/pupil or the region is uniform.
    """
    region = ndimage.binary_fill_holes((labels == IRIS) | (labels == PUPIL))
    if region.sum() < 2:
        return None
    gray = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if sigma > 0:
        gray = ndimage.gaussian_filter(gray, sigma, mode="nearest")
    vals = gray[region]
    if vals.max() == vals.min():
        return None
    dark = largest_component(region & (gray <= _otsu_threshold(vals)))
    if not dark.any():
        return None
    fit_map = np.zeros(labels.shape, dtype=np.uint8)
    fit_map[region] = IRIS
    fit_map[dark] = PUPIL
    return pupil_center(fit_map)


def feature_distance(
    outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], backbone: FeatureBackbone,
    layer: str = FEATURE_LAYER,
) -> list[float]:
    """Per image: mean over C×h×w of (F_layer[output] − F_layer[target])², uint8 H×W×3 inputs."""
    with torch.no_grad():
        fo = backbone.features(images_to_tensor(list(outputs)).contiguous(), [layer])[layer]
        ft = backbone.features(images_to_tensor(list(targets)).contiguous(), [layer])[layer]
    return [float(v) for v in (fo - ft).square().flatten(1).mean(1)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, population std) of the finite values; (nan, nan) when there are none."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return (float(a.mean()), float(a.std())) if a.size else (float("nan"), float("nan"))


def score_outputs(
    outputs: Sequence[np.ndarray], cases: Sequence[PairedCase],
    feature_backbones: Mapping[str, FeatureBackbone], layer: str = FEATURE_LAYER,
) -> dict[str, Any]:
    """Scores of ``outputs`` (uint8 H×W×3, one per case) against the cases' targets.

    Returns ``psnr``, ``ssim``, ``change_from_input`` (mean absolute difference to the
    case's content, 0–255 scale), ``feat_<name>`` (one per feature backbone) and
    ``pupil_shift_px`` as (mean, std), ``pupil_not_found`` (outputs where the fit failed),
    ``pupil_gt_missing`` (cases whose labels have no pupil) and ``per_image`` lists.
    """
    if len(outputs) != len(cases):
        raise ValueError(f"{len(outputs)} outputs for {len(cases)} cases")
    targets = [c.target for c in cases]
    per: dict[str, list[float]] = {
        "psnr": [psnr(o, t) for o, t in zip(outputs, targets, strict=True)],
        "ssim": [ssim(o, t) for o, t in zip(outputs, targets, strict=True)],
        "change_from_input": [
            float(np.abs(o.astype(np.float64) - c.content).mean()) for o, c in zip(outputs, cases, strict=True)
        ],
    }
    for name, net in feature_backbones.items():
        per[f"feat_{name}"] = feature_distance(outputs, targets, net, layer)
    shifts: list[float] = []
    not_found = gt_missing = 0
    for o, c in zip(outputs, cases, strict=True):
        gt = pupil_center(c.labels)
        fit = fit_dark_pupil(o, c.labels)
        if gt is None:
            gt_missing += 1
            shifts.append(float("nan"))
        elif fit is None:
            not_found += 1
            shifts.append(float("nan"))
        else:
            shifts.append(float(np.hypot(*(fit - gt))))
    per["pupil_shift_px"] = shifts
    row: dict[str, Any] = {key: mean_std(v) for key, v in per.items()}
    row.update(pupil_not_found=not_found, pupil_gt_missing=gt_missing, per_image=per)
    return row


def classical_outputs(cases: Sequence[PairedCase]) -> dict[str, list[np.ndarray]]:
    """Raw input, histogram matching and Reinhard outputs; reference statistics from the
    cases' style renders (never the targets)."""
    ref = reference_stats([c.style for c in cases])
    return {
        "raw input": [c.content.copy() for c in cases],
        "histogram matching": [histogram_match(c.content, ref) for c in cases],
        "Reinhard": [reinhard(c.content, ref) for c in cases],
    }


def optimize_case(
    case: PairedCase, backbone: FeatureBackbone, method: str, iters: int, init: str = "content",
    seed: int = 0, config: LossConfig | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Run ``optimize_image`` on one case; (output uint8 H×W×3, run record).

    The masked method uses union attention (iris ∪ pupil) from the content's and the style's
    label maps. The record holds iterations requested/completed, the stop reason, the
    initial and final objective, evaluations and seconds per iteration.
    """
    content = images_to_tensor(case.content).contiguous()
    style = images_to_tensor(case.style).contiguous()
    regions: dict[str, Any] = {}
    if method == "masked":
        regions = {
            "content_regions": Regions.from_labels(labels_to_tensor(case.labels)),
            "style_regions": Regions.from_labels(labels_to_tensor(case.style_labels)),
        }
    start = time.perf_counter()
    image, log = optimize_image(
        content, style, backbone, method=method, iters=iters, init=init,  # type: ignore[arg-type]
        seed=seed, config=config, show_progress=False, **regions,
    )
    seconds = time.perf_counter() - start
    done = log.iterations_completed
    record: dict[str, Any] = {
        "iters_requested": log.iterations_requested,
        "iters_completed": done,
        "stop_reason": log.stop_reason,
        "objective_initial": log.initial["total"],
        "objective_final": log.final["total"],
        "closure_evals": log.closure_evals,
        "seconds": seconds,
        "seconds_per_iter": float(np.mean([e["seconds"] for e in log.iterations])) if done else float("nan"),
        "warnings": list(log.warnings),
    }
    return tensor_to_images(image)[0], record


def run_paired_optimization(
    cases: Sequence[PairedCase],
    backbones: Mapping[str, FeatureBackbone],
    feature_backbones: Mapping[str, FeatureBackbone],
    methods: Sequence[str] = ("gatys", "masked"),
    iters: int = 100,
    init: str = "content",
    seed: int = 0,
    config: LossConfig | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Classical rows, then one row per (method, backbone); (rows, outputs by row name).

    Each row: ``name``, ``method``, ``backbone`` (key in ``backbones``), ``backbone_is_random``,
    ``n``, the :func:`score_outputs` fields and, for optimised rows, ``iters_requested``,
    ``iters_completed`` (list per image), ``stop_reasons`` (those that were not a completed
    run), ``objective_final`` and ``seconds_per_iter`` as (mean, std), ``evals_per_iter``,
    and ``runs`` (every per-image record).
    """
    rows: list[dict[str, Any]] = []
    outputs: dict[str, list[np.ndarray]] = {}
    for name, outs in classical_outputs(cases).items():
        row: dict[str, Any] = {"name": name, "method": name, "backbone": None, "backbone_is_random": False,
                                  "n": len(outs)}
        row.update(score_outputs(outs, cases, feature_backbones))
        rows.append(row)
        outputs[name] = outs
    for method in methods:
        for bname, net in backbones.items():
            outs, runs = [], []
            for case in cases:
                out, rec = optimize_case(case, net, method, iters, init, seed, config)
                outs.append(out)
                runs.append(rec)
            name = f"{method} / {bname}"
            row = {"name": name, "method": method, "backbone": bname,
                   "backbone_is_random": bool(net.is_random), "n": len(outs)}
            row.update(score_outputs(outs, cases, feature_backbones))
            done = [int(r["iters_completed"]) for r in runs]
            row.update(
                iters_requested=iters,
                iters_completed=done,
                stop_reasons=sorted({str(r["stop_reason"]) for r in runs if int(r["iters_completed"]) != iters}),
                objective_final=mean_std([float(r["objective_final"]) for r in runs]),
                seconds_per_iter=mean_std([float(r["seconds_per_iter"]) for r in runs]),
                evals_per_iter=float(np.sum([int(r["closure_evals"]) for r in runs]) / max(1, sum(done))),
                runs=runs,
            )
            rows.append(row)
            outputs[name] = outs
    return rows, outputs


def _fmt(pair: Any, digits: int) -> str:
    m, s = pair
    return "–" if not np.isfinite(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(rows: Sequence[Mapping[str, object]], feature_name: str = "lite0") -> str:
    """Rows of :func:`run_paired_optimization` as a Markdown table (mean ± std over images)."""
    key = f"feat_{feature_name}"
    lines = [
        f"| row | random weights | PSNR (dB) ↑ | SSIM ↑ | feature dist. ({feature_name} {FEATURE_LAYER}) ↓ "
        "| pupil shift (px) ↓ | change from input (0–255) | final objective | iterations | s / iteration |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        optimised = "iters_completed" in r
        if optimised:
            done = r["iters_completed"]
            iters = f"{min(done)}–{max(done)} of {r['iters_requested']}" if min(done) != max(done) else (  # type: ignore[call-overload]
                f"{done[0]} of {r['iters_requested']}")  # type: ignore[index]
        cells = [
            str(r["name"]), "yes" if r["backbone_is_random"] else "no",
            _fmt(r["psnr"], 2), _fmt(r["ssim"], 3), _fmt(r[key], 3), _fmt(r["pupil_shift_px"], 2),
            _fmt(r["change_from_input"], 1),
            _fmt(r["objective_final"], 0) if optimised else "–",
            iters if optimised else "–",
            _fmt(r["seconds_per_iter"], 3) if optimised else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def contact_sheet(
    columns: Mapping[str, Sequence[np.ndarray]], scale: int = 2, gap: int = 2, header: int = 14,
) -> np.ndarray:
    """A uint8 RGB grid: one column per entry of ``columns`` (title on top), one row per image.

    All images are uint8 H×W×3 of one size, enlarged ``scale``× (nearest); titles longer
    than the column are cut. Returns (header + rows·(scale·H + gap))×(cols·(scale·W + gap))×3.
    """
    names = list(columns)
    if not names:
        raise ValueError("contact_sheet needs at least one column")
    n = len(columns[names[0]])
    if any(len(columns[k]) != n for k in names):
        raise ValueError("contact_sheet: every column needs the same number of images")
    h, w = columns[names[0]][0].shape[:2]
    ch, cw = scale * h + gap, scale * w + gap
    sheet = np.full((header + n * ch, len(names) * cw, 3), 255, dtype=np.uint8)
    for j, name in enumerate(names):
        text = name
        while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, 0.8, 1)[0][0] > cw - 2:
            text = text[:-1]
        cv2.putText(sheet, text, (j * cw + 1, header - 4), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
        for i, im in enumerate(columns[name]):
            if im.shape[:2] != (h, w):
                raise ValueError(f"contact_sheet: image {i} of {name!r} is {im.shape[:2]}, expected {(h, w)}")
            big = np.repeat(np.repeat(im, scale, axis=0), scale, axis=1)
            y, x = header + i * ch, j * cw
            sheet[y : y + scale * h, x : x + scale * w] = big
    return sheet
