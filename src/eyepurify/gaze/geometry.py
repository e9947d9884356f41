"""Gaze vector ⇄ (pitch, yaw) and angular error, in the MPIIGaze convention.

Frame: x right, y down, z forward from the camera. pitch = asin(-y), yaw = atan2(-x, -z),
so (0, 0) looks straight at the camera, positive pitch looks up (y < 0) and positive yaw
looks towards negative x (the image's left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is used: `import eyepurify` stays light
    import torch


def vector_to_pitchyaw(v: np.ndarray) -> np.ndarray:
    """(..., 3) gaze vectors (any length > 0) -> (..., 2) (pitch, yaw) radians."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape[-1] != 3:
        raise ValueError(f"gaze vectors must have 3 components, got shape {v.shape}")
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n == 0) or not np.all(np.isfinite(v)):
        raise ValueError("gaze vectors must be finite and non-zero")
    u = v / n
    pitch = np.arcsin(np.clip(-u[..., 1], -1.0, 1.0))
    yaw = np.arctan2(-u[..., 0], -u[..., 2])
    return np.stack([pitch, yaw], axis=-1)


def pitchyaw_to_vector(py: np.ndarray) -> np.ndarray:
    """(..., 2) (pitch, yaw) radians -> (..., 3) unit gaze vectors."""
    py = np.asarray(py, dtype=np.float64)
    if py.shape[-1] != 2:
        raise ValueError(f"pitch/yaw must have 2 components, got shape {py.shape}")
    pitch, yaw = py[..., 0], py[..., 1]
    x = -np.cos(pitch) * np.sin(yaw)
    y = -np.sin(pitch)
    z = -np.cos(pitch) * np.cos(yaw)
    return np.stack([x, y, z], axis=-1)


def angular_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between (..., 3) vectors or (..., 2) pitch/yaw arrays.

    Inputs of 2 components are read as (pitch, yaw). The cosine is clamped to [-1, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] == 2:
        a = pitchyaw_to_vector(a)
    if b.shape[-1] == 2:
        b = pitchyaw_to_vector(b)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    cos = np.sum(a * b, axis=-1) / np.maximum(na * nb, 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def angular_error_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between (..., 3) gaze vectors (torch, differentiable away from 0/180)."""
    import torch

    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
