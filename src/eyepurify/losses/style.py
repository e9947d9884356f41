"""Gram matrices and style losses, METHOD §8 / paper eq. 13–17.

Normalisation: every Gram is divided by the area it was taken over (M = h·w for a whole
image; M_k = Σ R_k² for a region map R_k, the pixel count for hard maps), and the loss is
1/(4·N_l²) Σ (Ĝ[O] − Ĝ[S])². When O and S cover equal areas M this is exactly the
paper's 1/(4·N_l²·M²) Σ (G[O] − G[S])²; when they differ (different image sizes, or I's
region smaller than S's) each image is normalised by its own area, so the loss compares
feature statistics, not pixel counts.
"""

from __future__ import annotations

import torch
from torch import Tensor

from eyepurify.losses.regions import region_area, resize_maps

DEFAULT_MIN_AREA = 1e-3


def gram_matrix(features: Tensor) -> Tensor:
    """Unnormalised Gram G = F Fᵀ: N×C×h×w -> N×C×C."""
    if features.ndim != 4:
        raise ValueError(f"features must be N×C×h×w, got {tuple(features.shape)}")
    f = features.flatten(2)
    return f @ f.transpose(1, 2)


def region_gram(features: Tensor, region: Tensor) -> Tensor:
    """Region Gram G_r = (F·R)(F·R)ᵀ for every region channel.

    features: N×C×h×w; region: N×K×H×W (or 1×K×H×W, broadcast) in [0, 1], resized to h×w.
    Returns N×K×C×C (unnormalised).
    """
    if features.ndim != 4 or region.ndim != 4:
        raise ValueError(
            f"features and region must be 4-D, got {tuple(features.shape)} and {tuple(region.shape)}"
        )
    r = resize_maps(region, (features.shape[2], features.shape[3])).flatten(2).unsqueeze(2)  # N×K×1×hw
    fr = features.flatten(2).unsqueeze(1) * r  # N×K×C×hw
    return fr @ fr.transpose(2, 3)


def style_loss(f_out: Tensor, f_style: Tensor) -> Tensor:
    """Whole-image style loss 1/(4·N_l²) Σ (G[O]/M_O − G[S]/M_S)², batch mean.

    f_out: N×C×h×w; f_style: N×C×h'×w' or 1×C×h'×w' (one style image for the batch);
    the two may differ in spatial size. Returns a scalar.
    """
    _check_pair(f_out, f_style)
    c = f_out.shape[1]
    g_out = gram_matrix(f_out) / (f_out.shape[2] * f_out.shape[3])
    g_sty = gram_matrix(f_style) / (f_style.shape[2] * f_style.shape[3])
    per_sample = (g_out - g_sty).square().sum(dim=(1, 2)) / (4.0 * c * c)
    return per_sample.mean()


def region_style_loss(
    f_out: Tensor,
    f_style: Tensor,
    regions_out: Tensor,
    regions_style: Tensor,
    min_area: float = DEFAULT_MIN_AREA,
) -> tuple[Tensor, Tensor]:
    """Region style loss Σ_k 1/(4·N_l²) Σ (G_k[O]/M_k[O] − G_k[S]/M_k[S])², batch mean.

    f_out: N×C×h×w features of O; f_style: N×C×h'×w' or 1×C×h'×w' features of S.
    regions_out: N×K×H×W maps used for O (I's maps); regions_style: N×K or 1×K maps of S
    at S's image size. Both are resized to their layer. A region whose effective area at
    this layer is below ``min_area`` (layer pixels) in O or in S contributes exactly 0.
    Returns (scalar loss, N×K bool tensor "region k was empty for sample n").
    """
    _check_pair(f_out, f_style)
    if regions_out.shape[1] != regions_style.shape[1]:
        raise ValueError(
            f"O and S need the same number of region channels, got "
            f"{regions_out.shape[1]} and {regions_style.shape[1]}"
        )
    c = f_out.shape[1]
    r_out = resize_maps(regions_out, (f_out.shape[2], f_out.shape[3]))
    r_sty = resize_maps(regions_style, (f_style.shape[2], f_style.shape[3]))
    area_out, area_sty = region_area(r_out), region_area(r_sty)  # N×K, N×K (or 1×K)
    empty = (area_out < min_area) | (area_sty < min_area)  # N×K
    one = torch.ones((), dtype=area_out.dtype, device=area_out.device)
    g_out = region_gram(f_out, r_out) / torch.where(area_out < min_area, one, area_out)[..., None, None]
    g_sty = region_gram(f_style, r_sty) / torch.where(area_sty < min_area, one, area_sty)[..., None, None]
    per_region = (g_out - g_sty).square().sum(dim=(2, 3)) / (4.0 * c * c)  # N×K
    per_region = torch.where(empty, torch.zeros_like(per_region), per_region)
    return per_region.sum(dim=1).mean(), empty


def _check_pair(f_out: Tensor, f_style: Tensor) -> None:
    if f_out.ndim != 4 or f_style.ndim != 4 or f_out.shape[1] != f_style.shape[1]:
        raise ValueError(
            f"style features must be N×C×h×w with equal C, got {tuple(f_out.shape)} and "
            f"{tuple(f_style.shape)}"
        )
    if f_style.shape[0] not in (1, f_out.shape[0]):
        raise ValueError(
            f"style batch must be 1 or {f_out.shape[0]}, got {f_style.shape[0]}"
        )


def softmax_features(features: Tensor, temperature: float = 1.0) -> Tensor:
    """The activation smoothing of Wang, Li & Vasconcelos (CVPR 2021, "SWAG"): a softmax
    over every channel and position of one sample's N×C×h×w features, rescaled by C·h·w
    so that the values average 1 (the loss weights keep their scale). Raises the entropy of
    the peaky activations of non-VGG networks, which makes their Grams usable for style."""
    if features.ndim != 4:
        raise ValueError(f"features must be N×C×h×w, got {tuple(features.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = features.shape[1] * features.shape[2] * features.shape[3]
    flat = torch.softmax(features.flatten(1) / temperature, dim=1) * n
    return flat.view_as(features)
