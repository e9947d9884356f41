"""Paired bootstrap intervals for benchmark changes (pure functions, seeded).

* :func:`paired_bootstrap` — per-image paired values a (baseline) and b (treatment):
  stat(b − a) and its 95 % percentile interval over images resampled with replacement.
* :func:`bootstrap_stat_change` — the same resampling but stat(b) − stat(a) (e.g. the change
  of a *median*, which is not the median of the changes).
* :func:`pooled_iou_change` — the change of a pooled (one confusion matrix) IoU between two
  sets of predictions of the same images: the images are resampled and both pooled
  confusion matrices recomputed from per-image ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Stat = Callable[[np.ndarray], float]


def _paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired values must be two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("paired bootstrap needs at least one pair")
    return x, y


def _indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """n_boot × n resampling indices (with replacement) from ``seed``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be ≥ 1, got {n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _interval(samples: np.ndarray) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if len(s) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(s, [2.5, 97.5])
    return float(lo), float(hi)


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    stat: Stat = np.mean,
) -> tuple[float, float, float]:
    """(delta, lo, hi): delta = stat(b − a) over the N pairs, [lo, hi] its 95 % percentile
    bootstrap interval (pairs resampled together, ``n_boot`` times from ``seed``).

    a, b: (N,) per-image values of the baseline and the treatment on the same images.
    """
    x, y = _paired(a, b)
    d = y - x
    idx = _indices(len(d), n_boot, seed)
    boots = np.array([stat(d[i]) for i in idx], dtype=np.float64)
    lo, hi = _interval(boots)
    return float(stat(d)), lo, hi


def bootstrap_stat_change(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    stat: Stat = np.median,
) -> tuple[float, float, float]:
    """(delta, lo, hi) with delta = stat(b) − stat(a) of paired (N,) values; the interval
    resamples the pairs together. Equals :func:`paired_bootstrap` for ``stat=np.mean``."""
    x, y = _paired(a, b)
    idx = _indices(len(x), n_boot, seed)
    boots = np.array([stat(y[i]) - stat(x[i]) for i in idx], dtype=np.float64)
    lo, hi = _interval(boots)
    return float(stat(y) - stat(x)), lo, hi


def pooled_iou(conf: np.ndarray, classes: Sequence[int]) -> float:
    """Mean over ``classes`` of the per-class IoU of a C×C confusion matrix (rows = prediction
    or truth, either: IoU is symmetric in them); classes absent from both sides are left out
    (NaN when all are)."""
    c = np.asarray(conf, dtype=np.float64)
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    vals = [tp[k] / union[k] for k in classes if union[k] > 0]
    return float(np.mean(vals)) if vals else float("nan")


def pooled_iou_change(
    conf_a: np.ndarray,
    conf_b: np.ndarray,
    classes: Sequence[int],
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(delta, lo, hi) of the pooled mean IoU over ``classes``: b's minus a's.

    conf_a, conf_b: N×C×C per-image confusion matrices of two prediction sets of the same N
    images (same order). Each bootstrap draw resamples the images (together for a and b),
    sums their matrices and recomputes both pooled IoUs.
    """
    ca, cb = np.asarray(conf_a, dtype=np.int64), np.asarray(conf_b, dtype=np.int64)
    if ca.ndim != 3 or ca.shape != cb.shape or ca.shape[1] != ca.shape[2]:
        raise ValueError(f"expected two N×C×C arrays of one shape, got {ca.shape} and {cb.shape}")
    if len(ca) == 0:
        raise ValueError("pooled IoU bootstrap needs at least one image")
    delta = pooled_iou(cb.sum(0), classes) - pooled_iou(ca.sum(0), classes)
    idx = _indices(len(ca), n_boot, seed)
    # Per-draw sums through counts: draw k's sum is counts[k] @ per-image matrices.
    counts = np.zeros((n_boot, len(ca)), np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(ca)), idx.ravel()), 1)
    sa = np.einsum("kn,nij->kij", counts, ca)
    sb = np.einsum("kn,nij->kij", counts, cb)
    boots = np.array([pooled_iou(sb[k], classes) - pooled_iou(sa[k], classes) for k in range(n_boot)])
    lo, hi = _interval(boots)
    return float(delta), lo, hi
