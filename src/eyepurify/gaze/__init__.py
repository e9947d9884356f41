"""Gaze estimators, the evaluation protocol and the gaze geometry."""

from eyepurify.gaze.geometry import (
    angular_error,
    angular_error_torch,
    pitchyaw_to_vector,
    vector_to_pitchyaw,
)

__all__ = ["angular_error", "angular_error_torch", "pitchyaw_to_vector", "vector_to_pitchyaw"]
