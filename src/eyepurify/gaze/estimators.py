"""Gaze estimators with one small interface: ``fit(images, pitchyaw)``, ``predict(images)``.

``images``: N×H×W gray (or N×H×W×3 RGB) uint8 eye images, all of one size (36×60 in the
protocol); ``pitchyaw``: N×2 radians (MPIIGaze convention, :mod:`eyepurify.gaze.geometry`).
The classical estimators (svr, alr, rf, knn) see :func:`appearance_features` (135-D);
the CNN sees the image itself. :func:`create_estimator` builds one by name.

ALR (adaptive linear regression, Lu et al., TPAMI 2014) reconstructs the test feature
as a sparse linear combination of training features and applies the same weights to
their gaze: min_w ½‖[e; c] − [E; c·1ᵀ] w‖² / D + α‖w‖₁, where the appended row c·1
softly ties Σw to 1 (Lu et al.'s sum-to-one constraint). For speed the candidate columns
E are the ``k`` nearest training features of the test feature (the sparse solution uses
few of them anyway), solved with sklearn's Lasso (coordinate descent, weights may be
negative). Gaze = the weighted sum of the candidates' unit gaze vectors, renormalised;
if the reconstruction fails (all weights zero), the candidates' mean is used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from eyepurify.errors import EyepurifyError
from eyepurify.gaze.features import appearance_features
from eyepurify.gaze.geometry import pitchyaw_to_vector, vector_to_pitchyaw

ESTIMATORS = ("svr", "alr", "rf", "knn", "cnn")


class GazeEstimator(Protocol):
    def fit(self, images: np.ndarray, pitchyaw: np.ndarray) -> GazeEstimator: ...

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def _check(images: np.ndarray, pitchyaw: np.ndarray) -> np.ndarray:
    py = np.asarray(pitchyaw, np.float64)
    if py.ndim != 2 or py.shape[1] != 2:
        raise EyepurifyError(f"gaze must be N×2 (pitch, yaw), got shape {py.shape}")
    if len(images) != len(py) or len(py) < 2:
        raise EyepurifyError(f"need at least 2 images with one gaze each, got {len(images)} and {len(py)}")
    return py


@dataclass
class SklearnEstimator:
    """A scikit-learn regressor on appearance features predicting (pitch, yaw)."""

    regressor: object
    name: str = ""

    def fit(self, images: np.ndarray, pitchyaw: np.ndarray) -> SklearnEstimator:
        py = _check(images, pitchyaw)
        self.regressor.fit(appearance_features(images), py)  # type: ignore[attr-defined]
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.regressor.predict(appearance_features(images)), np.float64)  # type: ignore[attr-defined]


@dataclass
class ALREstimator:
    """Adaptive linear regression (see the module docstring); ``k`` candidates, l1 weight ``alpha``."""

    k: int = 64
    alpha: float = 1e-4
    sum_weight: float = 1.0
    _feats: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    _vecs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def fit(self, images: np.ndarray, pitchyaw: np.ndarray) -> ALREstimator:
        py = _check(images, pitchyaw)
        self._feats = appearance_features(images)
        self._vecs = pitchyaw_to_vector(py)
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        if not len(self._feats):
            raise EyepurifyError("ALR is not fitted yet (call fit first)")
        feats = appearance_features(images)
        k = min(self.k, len(self._feats))
        d2 = (feats**2).sum(1)[:, None] - 2 * feats @ self._feats.T + (self._feats**2).sum(1)[None]
        cand = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out = np.empty((len(feats), 3))
        lasso = Lasso(alpha=self.alpha, fit_intercept=False, max_iter=2000, tol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for i, (f, c) in enumerate(zip(feats, cand, strict=True)):
                a = np.vstack([self._feats[c].T, np.full((1, k), self.sum_weight)])
                b = np.append(f, self.sum_weight)
                w = lasso.fit(a, b).coef_
                v = w @ self._vecs[c] if np.any(w) else self._vecs[c].mean(0)
                if np.linalg.norm(v) < 1e-9:
                    v = self._vecs[c].mean(0)
                out[i] = v
        return vector_to_pitchyaw(out)


def create_estimator(name: str, seed: int = 0, **kw: object) -> GazeEstimator:
    """An unfitted estimator: "svr", "alr", "rf", "knn" or "cnn" (``kw`` go to the CNN:
    model="paper"|"test_tiny", batch, max_epochs, patience, time_limit_s, progress)."""
    if name == "svr":
        from sklearn.multioutput import MultiOutputRegressor
        from sklearn.svm import SVR

        # RBF SVR per angle; epsilon 0.01 rad (0.6°) so the tube is below the errors we measure
        return SklearnEstimator(MultiOutputRegressor(SVR(C=1.0, epsilon=0.01, gamma="scale")), "svr")
    if name == "alr":
        return ALREstimator()
    if name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return SklearnEstimator(RandomForestRegressor(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed), "rf")
    if name == "knn":
        from sklearn.neighbors import KNeighborsRegressor

        return SklearnEstimator(KNeighborsRegressor(n_neighbors=5, weights="distance"), "knn")
    if name == "cnn":
        from eyepurify.gaze.cnn import CNNEstimator

        return CNNEstimator(seed=seed, **kw)  # type: ignore[arg-type]
    raise EyepurifyError(f"unknown gaze estimator {name!r} (use one of {', '.join(ESTIMATORS)})")
