import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from eyepurify.gaze.geometry import (
    angular_error,
    angular_error_torch,
    pitchyaw_to_vector,
    vector_to_pitchyaw,
)


def test_looking_at_camera_is_zero():
    np.testing.assert_allclose(vector_to_pitchyaw(np.array([0.0, 0.0, -1.0])), [0.0, 0.0], atol=1e-12)


def test_signs_follow_mpiigaze():
    # looking up: y negative -> positive pitch; towards -x -> positive yaw
    assert vector_to_pitchyaw(np.array([0.0, -0.5, -1.0]))[0] > 0
    assert vector_to_pitchyaw(np.array([-0.5, 0.0, -1.0]))[1] > 0


@given(
    st.floats(-1.4, 1.4, allow_nan=False), st.floats(-3.0, 3.0, allow_nan=False)
)
def test_roundtrip(pitch, yaw):
    py = np.array([pitch, yaw])
    v = pitchyaw_to_vector(py)
    assert np.isclose(np.linalg.norm(v), 1.0)
    np.testing.assert_allclose(vector_to_pitchyaw(v), py, atol=1e-9)


def test_angular_error_known_values_and_clamp():
    a = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, -2.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(angular_error(a, b), [0.0, 90.0, 180.0], atol=1e-6)
    # rounding can push the cosine just above 1: clamped, never NaN
    v = np.array([0.1, 0.2, 0.3]) * 1e8
    assert np.isfinite(angular_error(v, v)) and angular_error(v, v) < 1e-3


def test_angular_error_accepts_pitchyaw():
    py1, py2 = np.array([0.1, 0.2]), np.array([0.1, 0.3])
    np.testing.assert_allclose(
        angular_error(py1, py2), angular_error(pitchyaw_to_vector(py1), pitchyaw_to_vector(py2))
    )


def test_torch_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    t = angular_error_torch(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(t, angular_error(a, b), atol=1e-6)


def test_rejects_bad_vectors():
    with pytest.raises(ValueError):
        vector_to_pitchyaw(np.zeros(3))
    with pytest.raises(ValueError):
        vector_to_pitchyaw(np.array([np.nan, 0, 1]))
