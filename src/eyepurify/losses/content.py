"""Content (feature reconstruction) losses, METHOD §8 / paper eq. 8–11."""

from __future__ import annotations

from torch import Tensor

from eyepurify.losses.regions import resize_maps


def _check_features(f_out: Tensor, f_ref: Tensor) -> None:
    if f_out.ndim != 4 or f_out.shape != f_ref.shape:
        raise ValueError(
            f"content features must both be N×C×h×w of one shape, got "
            f"{tuple(f_out.shape)} and {tuple(f_ref.shape)}"
        )


def content_loss(f_out: Tensor, f_ref: Tensor) -> Tensor:
    """Global content ℓ_gc = 1/(2·N_l·M_l) Σ (F[O] − F[I])², averaged over the batch.

    f_out, f_ref: N×C×h×w features of O and I at one layer (N_l = C, M_l = h·w).
    Returns a scalar.
    """
    _check_features(f_out, f_ref)
    _, c, h, w = f_out.shape
    per_sample = (f_out - f_ref).square().sum(dim=(1, 2, 3)) / (2.0 * c * h * w)
    return per_sample.mean()


def local_content_loss(f_out: Tensor, f_ref: Tensor, attention: Tensor) -> Tensor:
    """Local content ℓ_lc = Σ_k 1/(2·N_l·M_l) Σ (F[O]·A_k − F[I]·A_k)², batch mean.

    f_out, f_ref: N×C×h×w; attention: I's attention maps N×K×H×W in [0, 1] at any size,
    resized to h×w with ``resize_maps``. The normaliser is the whole layer (M_l = h·w), as
    in the paper's eq. 9, so positions outside the region contribute exactly zero.
    Returns a scalar (0 when the attention is empty).
    """
    _check_features(f_out, f_ref)
    if attention.ndim != 4 or attention.shape[0] != f_out.shape[0]:
        raise ValueError(
            f"attention must be N×K×H×W with N = {f_out.shape[0]}, got {tuple(attention.shape)}"
        )
    _, c, h, w = f_out.shape
    a = resize_maps(attention, (h, w)).unsqueeze(2)  # N×K×1×h×w
    diff = (f_out - f_ref).unsqueeze(1) * a  # N×K×C×h×w
    per_sample = diff.square().sum(dim=(1, 2, 3, 4)) / (2.0 * c * h * w)
    return per_sample.mean()
