"""Gaze estimators, the evaluation protocol and the gaze geometry.

The estimator and protocol names are imported lazily (``eyepurify.sample`` imports the
geometry at start-up; the estimators pull in scikit-learn and the CNN).
"""

from __future__ import annotations

import importlib
from typing import Any

from eyepurify.gaze.geometry import (
    angular_error,
    angular_error_torch,
    pitchyaw_to_vector,
    vector_to_pitchyaw,
)

_LAZY = {
    "appearance_features": "eyepurify.gaze.features",
    "to_gray": "eyepurify.gaze.features",
    "ESTIMATORS": "eyepurify.gaze.estimators",
    "ALREstimator": "eyepurify.gaze.estimators",
    "SklearnEstimator": "eyepurify.gaze.estimators",
    "create_estimator": "eyepurify.gaze.estimators",
    "CNNEstimator": "eyepurify.gaze.cnn",
    "GazeCNN": "eyepurify.gaze.cnn",
    "GazeCNNConfig": "eyepurify.gaze.cnn",
    "GazeSet": "eyepurify.gaze.protocol",
    "load_gaze_set": "eyepurify.gaze.protocol",
    "evaluate_estimator": "eyepurify.gaze.protocol",
    "summarize": "eyepurify.gaze.protocol",
    "cumulative_curve": "eyepurify.gaze.protocol",
    "cdf_figure": "eyepurify.gaze.protocol",
}

__all__ = ["angular_error", "angular_error_torch", "pitchyaw_to_vector", "vector_to_pitchyaw", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eyepurify.gaze' has no attribute {name!r}")
