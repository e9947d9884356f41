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
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

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

    def to_dict(self) -> dict[str, object]:
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

    def stat(v: list[float], f) -> float:  # type: ignore[no-untyped-def]
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
