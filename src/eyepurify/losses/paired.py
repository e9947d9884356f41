"""Paired terms (METHOD §15): the purified wild render against the indoor render of the same draw.

The renderer draws one eye in both domains, pixel-aligned, so the output O of a wild input
can be compared with its indoor target T directly: in pixels and in loss-network features.
Only the light may change; iris colour, skin tone and geometry must stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from eyepurify.losses.content import content_loss


def pixel_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of N×C×H×W images in [0, 1] (a scalar in [0, 1])."""
    if output.shape != target.shape:
        raise ValueError(f"output and target must have one shape, got {tuple(output.shape)} and {tuple(target.shape)}")
    return (output - target).abs().mean()


def feature_loss(out_features: Mapping[str, Tensor], target_features: Mapping[str, Tensor], layers: Sequence[str]) -> Tensor:
    """Σ over ``layers`` of the content loss (:func:`content_loss`) between O's and T's
    N×C×h×w features: the perceptual distance to the paired target."""
    if not layers:
        raise ValueError("feature_loss needs at least one layer")
    total = content_loss(out_features[layers[0]], target_features[layers[0]])
    for layer in layers[1:]:
        total = total + content_loss(out_features[layer], target_features[layer])
    return total
