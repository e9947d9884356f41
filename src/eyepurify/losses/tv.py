"""Total-variation regulariser ℓ_TV(O)."""

from __future__ import annotations

from torch import Tensor

PIXEL_SCALE = 255.0


def tv_loss(image: Tensor, scale: float = PIXEL_SCALE) -> Tensor:
    """Squared total variation Σ (O[i, j+1] − O[i, j])² + (O[i+1, j] − O[i, j])², batch mean.

    image: N×C×H×W in [0, 1]. The sum runs over channels and positions and is taken on the
    ``scale`` range (default 0–255: the result is 255² × the value on [0, 1]), so a
    weight θ quoted for 0–255 images (the paper's 1e-7 … 1e-5) applies unchanged.
    Returns a scalar.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be N×C×H×W, got {tuple(image.shape)}")
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    per_sample = dx.square().sum(dim=(1, 2, 3)) + dy.square().sum(dim=(1, 2, 3))
    return per_sample.mean() * (scale * scale)
