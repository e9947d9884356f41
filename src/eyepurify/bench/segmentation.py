"""Segmentation quality of predicted label maps against ground truth (issue 5).

Label maps are H×W uint8 with 0 skin, 1 sclera, 2 iris, 3 pupil; a prediction must have
its ground truth's size (predict at any working size, then bring the prediction back to
the ground truth's resolution before scoring). Every function is pure.

Definitions used by :func:`evaluate`:

* IoU is *pooled*: one confusion matrix summed over all images, then per class
  TP / (TP + FP + FN). A class absent from every prediction and every ground truth is NaN
  and left out of means.
* ``miou_iris_pupil`` = mean of the iris and pupil IoU; ``miou_all`` = mean over the four
  classes. ``eye_iou`` is the IoU of the union iris ∪ pupil (insensitive to where the
  pupil/iris border is drawn, or to a pupil that the annotator did not outline).
* ``pupil_iou_gt_pupil``: pupil IoU pooled over the images whose ground truth has a pupil
  only (so images whose pupil was never outlined do not count a predicted pupil as wrong).
* Pupil-centre error: only over images whose ground truth has a pupil. The true centre is
  :func:`eyepurify.labels.fit_pupil` of the ground truth (its pupil), the predicted one
  ``fit_pupil`` of the prediction (its pupil, or its iris when it has no pupil). An image
  whose prediction has neither iris nor pupil is a *miss*: counted, not averaged.
  Errors are in pixels of the ground truth and as a percentage of its width.
* No-eye share: images whose prediction has neither iris nor pupil, over all images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.bench.stats import bootstrap_stat_change, pooled_iou_change
from eyepurify.errors import EyepurifyError
from eyepurify.labels import confusion_matrix, fit_pupil, iou_from_confusion
from eyepurify.sample import IRIS, NUM_CLASSES, PUPIL

CLASS_NAMES = ("skin", "sclera", "iris", "pupil")


def _check_pair(pred: np.ndarray, target: np.ndarray, index: int | None = None) -> None:
    where = "" if index is None else f"image {index}: "
    for name, a in (("prediction", pred), ("ground truth", target)):
        if a.ndim != 2 or a.dtype != np.uint8:
            raise ValueError(f"{where}{name} must be an H×W uint8 label map, got {a.shape} {a.dtype}")
        if a.size and int(a.max()) >= NUM_CLASSES:
            raise ValueError(f"{where}{name} has label {int(a.max())}; labels must be 0..{NUM_CLASSES - 1}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{where}prediction is {pred.shape} but ground truth is {target.shape}: "
            "resize the prediction to the ground truth's size before scoring"
        )


def group_iou(conf: np.ndarray, classes: Sequence[int]) -> float:
    """IoU of the union of ``classes`` treated as one class (NaN if absent from both sides)."""
    c = np.asarray(conf, dtype=np.float64)
    idx = np.asarray(list(classes), dtype=np.int64)
    tp = c[np.ix_(idx, idx)].sum()
    union = c[idx, :].sum() + c[:, idx].sum() - tp
    return float(tp / union) if union > 0 else float("nan")


def nanmean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values; NaN when there are none."""
    v = [float(x) for x in values if not math.isnan(float(x))]
    return float(np.mean(v)) if v else float("nan")


def has_eye(pred: np.ndarray) -> bool:
    """True when an H×W label map has any iris or pupil pixel."""
    a = np.asarray(pred)
    return bool(((a == IRIS) | (a == PUPIL)).any())


def pupil_centre_error(pred: np.ndarray, target: np.ndarray) -> float | None:
    """Distance (px, at the ground truth's resolution) between the pupil centres of a
    prediction and its ground truth (both H×W uint8 label maps of one size).

    None when the ground truth has no pupil (not measured); ``inf`` when the prediction has
    neither iris nor pupil (a miss). Centres come from :func:`eyepurify.labels.fit_pupil`.
    """
    p, t = np.asarray(pred), np.asarray(target)
    _check_pair(p, t)
    if not (t == PUPIL).any():
        return None
    true_fit = fit_pupil(t)
    pred_fit = fit_pupil(p)
    if true_fit is None or pred_fit is None:
        return math.inf
    return float(np.hypot(*(pred_fit.center - true_fit.center)))


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one set of predictions (definitions in the module docstring).

    iou: per-class IoU (skin, sclera, iris, pupil). Pupil errors are over the
    ``n_pupil_measured`` images whose ground truth has a pupil and whose prediction has an
    eye; ``n_pupil_missed`` more had a true pupil but no predicted eye. ``*_pct`` values are
    percentages of the image width.
    """

    n_images: int
    iou: tuple[float, float, float, float]
    miou_iris_pupil: float
    miou_all: float
    eye_iou: float
    pupil_iou_gt_pupil: float
    n_gt_pupil: int
    n_pupil_measured: int
    n_pupil_missed: int
    pupil_error_px_mean: float
    pupil_error_px_median: float
    pupil_error_pct_mean: float
    pupil_error_pct_median: float
    n_no_eye: int
    no_eye_share: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None); per-class IoU keyed by class name."""
        d = asdict(self)
        d["iou"] = dict(zip(CLASS_NAMES, self.iou, strict=True))

        def clean(v: object) -> object:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, float) and math.isnan(v):
                return None
            return v

        return clean(d)  # type: ignore[return-value]


def evaluate(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> SegmentationScores:
    """Score predicted label maps against ground-truth ones (same order, same sizes).

    preds, targets: sequences of H×W uint8 label maps (0..3); sizes may differ between
    images but each prediction must have its ground truth's size. ValueError naming the
    image otherwise, or when the sequences differ in length or are empty.
    """
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} predictions but {len(targets)} ground truths")
    if len(preds) == 0:
        raise ValueError("nothing to evaluate: no label maps given")
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    conf_gt_pupil = np.zeros_like(conf)
    errors_px: list[float] = []
    errors_pct: list[float] = []
    n_gt_pupil = n_missed = n_no_eye = 0
    for i, (p_, t_) in enumerate(zip(preds, targets, strict=True)):
        p, t = np.asarray(p_), np.asarray(t_)
        _check_pair(p, t, i)
        c = confusion_matrix(p, t)
        conf += c
        if not has_eye(p):
            n_no_eye += 1
        err = pupil_centre_error(p, t)
        if err is None:
            continue
        n_gt_pupil += 1
        conf_gt_pupil += c
        if math.isinf(err):
            n_missed += 1
        else:
            errors_px.append(err)
            errors_pct.append(100.0 * err / t.shape[1])
    miou_all, iou = iou_from_confusion(conf)
    pupil_only = iou_from_confusion(conf_gt_pupil)[1][PUPIL] if n_gt_pupil else float("nan")

    def stat(v: list[float], f) -> float:
        return float(f(v)) if v else float("nan")

    return SegmentationScores(
        n_images=len(preds),
        iou=tuple(float(x) for x in iou),  # type: ignore[arg-type]
        miou_iris_pupil=nanmean([iou[IRIS], iou[PUPIL]]),
        miou_all=miou_all,
        eye_iou=group_iou(conf, (IRIS, PUPIL)),
        pupil_iou_gt_pupil=float(pupil_only),
        n_gt_pupil=n_gt_pupil,
        n_pupil_measured=len(errors_px),
        n_pupil_missed=n_missed,
        pupil_error_px_mean=stat(errors_px, np.mean),
        pupil_error_px_median=stat(errors_px, np.median),
        pupil_error_pct_mean=stat(errors_pct, np.mean),
        pupil_error_pct_median=stat(errors_pct, np.median),
        n_no_eye=n_no_eye,
        no_eye_share=n_no_eye / len(preds),
    )


# ---------------------------------------------------------------- benchmark rows on real photos

EVAL_CLASSES = (IRIS, PUPIL)


def load_photos(folder: Path, limit: int | None = None) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(stems, H×W×3 uint8 images, H×W uint8 masks) of an images/ + masks/ folder, by name
    (:func:`eyepurify.data.labelled.load_labelled`; an image without its mask is skipped)."""
    from eyepurify.data.labelled import load_labelled
    from eyepurify.errors import DataError

    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise DataError(folder, "needs images/ and masks/ subfolders", "pass a labelled folder (e.g. ../shared/data/real_eyes_seg)")
    got = load_labelled([folder], limit=limit)
    if not got.samples:
        raise DataError(folder / "images", "holds no images", "pass a folder with images/ and masks/")
    return [Path(s.source).stem for s in got.samples], [s.image for s in got.samples], [s.labels for s in got.samples]  # type: ignore[misc]


def split_real(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (test, train) index arrays (sorted) of ``n`` photos; test gets
    ``round(n · test_fraction)`` of them, at least 1 and at most n − 1 (n ≥ 2)."""
    if n < 2:
        raise EyepurifyError(f"need at least 2 real photos to split into test and train parts, got {n}")
    if not 0 < test_fraction < 1:
        raise EyepurifyError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng([seed, 61]).permutation(n)
    k = min(n - 1, max(1, round(n * test_fraction)))
    return np.sort(order[:k]), np.sort(order[k:])


@dataclass
class Scored:
    """One row's scores: summary (SegmentationScores dict) and per-image values for the bootstrap.

    conf: N×4×4 confusion matrices; err_pct: (N,) pupil-centre error in % of width (NaN: no
    true pupil, inf: no eye predicted).
    """

    summary: dict[str, Any]
    conf: np.ndarray
    err_pct: np.ndarray


def score(preds: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> Scored:
    """Score full-resolution predictions against their masks (summary + per-image values)."""
    conf = np.stack([confusion_matrix(p, t) for p, t in zip(preds, masks, strict=True)])
    err = []
    for p, t in zip(preds, masks, strict=True):
        e = pupil_centre_error(p, t)
        err.append(math.nan if e is None else 100.0 * e / t.shape[1])
    return Scored(evaluate(preds, masks).to_dict(), conf, np.array(err, np.float64))


def changes_vs(base: Scored, row: Scored, n_boot: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap changes of ``row`` against ``base`` (same images): mIoU(iris, pupil)
    pooled, and mean / median pupil error over images measured (finite) in both rows."""
    out: dict[str, Any] = {"miou": pooled_iou_change(base.conf, row.conf, EVAL_CLASSES, n_boot, seed)}
    ok = np.isfinite(base.err_pct) & np.isfinite(row.err_pct)
    out["n_err_paired"] = int(ok.sum())
    if ok.sum() >= 1:
        out["err_pct_mean"] = bootstrap_stat_change(base.err_pct[ok], row.err_pct[ok], n_boot, seed, np.mean)
        out["err_pct_median"] = bootstrap_stat_change(base.err_pct[ok], row.err_pct[ok], n_boot, seed, np.median)
    return out


def eye_width(mask: np.ndarray) -> int:
    """Columns spanned by the mask's eye (sclera, iris, pupil); 0 when it has none."""
    cols = np.nonzero((mask > 0).any(0))[0]
    return int(cols[-1] - cols[0] + 1) if len(cols) else 0


def centre_shifts(
    before: Sequence[np.ndarray], after: Sequence[np.ndarray], eye_widths: Sequence[float]
) -> dict[str, Any]:
    """Pupil-centre shift (fit_pupil) between label maps of raw and transformed images of one
    size: px and fraction of the eye width, over images with a centre in both and a known eye."""
    px, frac = [], []
    for a, b, w in zip(before, after, eye_widths, strict=True):
        fa, fb = fit_pupil(a), fit_pupil(b)
        if fa is None or fb is None or w <= 0:
            continue
        d = float(np.hypot(*(fa.center - fb.center)))
        px.append(d)
        frac.append(d / w)

    def st(v: list[float], f: Callable[[list[float]], object]) -> float | None:
        return float(f(v)) if v else None  # type: ignore[arg-type]

    return {
        "n": len(px), "n_total": len(before), "px": px,
        "px_mean": st(px, np.mean), "px_std": st(px, np.std), "px_median": st(px, np.median),
        "frac_mean": st(frac, np.mean), "frac_std": st(frac, np.std),
        "eye_width_mean": st([w for w in eye_widths if w > 0], np.mean),
    }
