"""Gaze measures beyond the mean error: ordering within groups and per-person calibration.

``ordering_spearman``: does an estimator order the gaze targets correctly, whatever its
bias? Within each group of samples that share everything but one gaze angle (e.g. person,
head pose, horizontal target and eye for the vertical angle), the Spearman correlation of
the predicted angle with the true one, averaged over the groups.
``calibrated_errors``: gaze trackers are calibrated per user; a per-person linear map of the
estimate, fitted on ``k`` samples of that person and scored on the rest, removes the
person's constant bias and gain (a constant predictor cannot win it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eyepurify.gaze.geometry import angular_error


def ordering_spearman(predicted: np.ndarray, true: np.ndarray, groups: Sequence[object]) -> tuple[float, int]:
    """(mean Spearman ρ over groups, number of groups used) of predicted vs true values (N,).

    Groups with fewer than 2 distinct true values or a constant prediction are skipped.
    Ties get average ranks. NaN when no group qualifies.
    """
    from scipy.stats import spearmanr

    pred, tru = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if pred.shape != tru.shape or len(pred) != len(groups):
        raise ValueError(f"predicted {pred.shape}, true {tru.shape} and {len(groups)} groups must match")
    by: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    rhos = []
    for idx in by.values():
        p, t = pred[idx], tru[idx]
        if len(np.unique(t)) < 2 or np.ptp(p) == 0:
            continue
        rhos.append(float(spearmanr(p, t).statistic))
    return (float(np.mean(rhos)) if rhos else float("nan")), len(rhos)


def calibrated_errors(
    predicted: np.ndarray, true: np.ndarray, persons: Sequence[object], k: int = 9, seed: int = 0, ridge: float = 1e-3
) -> np.ndarray:
    """Angular errors (degrees) after a per-person linear calibration of (pitch, yaw).

    predicted, true: N×2 radians. For each person, ``k`` samples (drawn with ``seed``) fit
    true ≈ [pred, 1] · W by ridge-regularised least squares (``ridge`` on the slopes, not the
    offsets); the person's other samples are scored with it. Persons with ≤ k samples are
    skipped. Returns the errors of the scored samples, in input order.
    """
    pred, tru = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if pred.shape != tru.shape or pred.ndim != 2 or pred.shape[1] != 2 or len(pred) != len(persons):
        raise ValueError(f"predicted {pred.shape}, true {tru.shape}: N×2 each, and one person per row")
    rng = np.random.default_rng(seed)
    by: dict[object, list[int]] = {}
    for i, p in enumerate(persons):
        by.setdefault(p, []).append(i)
    scored = np.full(len(pred), np.nan)
    reg = np.diag([ridge, ridge, 0.0])
    for key in sorted(by, key=str):
        idx = np.asarray(by[key])
        if len(idx) <= k:
            continue
        perm = rng.permutation(len(idx))
        fit, rest = idx[perm[:k]], idx[perm[k:]]
        a = np.c_[pred[fit], np.ones(k)]
        w = np.linalg.solve(a.T @ a + reg, a.T @ tru[fit])
        scored[rest] = angular_error(np.c_[pred[rest], np.ones(len(rest))] @ w, tru[rest])
    return scored[np.isfinite(scored)]
