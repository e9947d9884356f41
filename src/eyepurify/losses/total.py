"""The weighted objectives: the region-level task-guided loss (METHOD §8, paper eq. 18–19)
and the plain perceptual loss of Gatys / Johnson (whole-image Grams, no masks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from eyepurify.losses.content import content_loss, local_content_loss
from eyepurify.losses.regions import Regions
from eyepurify.losses.style import DEFAULT_MIN_AREA, region_style_loss, style_loss
from eyepurify.losses.tv import PIXEL_SCALE, tv_loss


@dataclass(frozen=True)
class LossConfig:
    """Weights and layer sets of the objective; the one place their defaults live.

    alpha (content), beta (style): the paper's α_l = 1e2, β_l = 1e4 for every layer.
    theta: TV weight on the 0–255 pixel scale (paper: 1e-7 … 1e-5; ``tv_loss`` rescales).
    lambda_global / lambda_local: λ_g, λ_l between global and local terms.
    min_region_area: regions with a smaller effective area at a layer (in layer pixels)
    are treated as empty there (zero contribution).
    """

    alpha: float = 1e2
    beta: float = 1e4
    theta: float = 1e-6
    lambda_global: float = 1.0
    lambda_local: float = 1.0
    global_content_layers: tuple[str, ...] = ("conv3_2",)
    local_content_layers: tuple[str, ...] = ("conv4_2",)
    global_style_layers: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
    local_style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    min_region_area: float = DEFAULT_MIN_AREA
    tv_scale: float = PIXEL_SCALE

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "theta", "lambda_global", "lambda_local", "min_region_area"):
            v = getattr(self, name)
            if not (v >= 0.0 and v < float("inf")):
                raise ValueError(f"LossConfig.{name} must be finite and >= 0, got {v}")

    @property
    def masked_layers(self) -> tuple[str, ...]:
        """Every layer the region-level loss reads, without repeats, in a stable order."""
        return _unique(
            self.global_content_layers + self.local_content_layers
            + self.global_style_layers + self.local_style_layers
        )

    @property
    def plain_layers(self) -> tuple[str, ...]:
        """Layers of the plain perceptual loss: global content and global style layers."""
        return _unique(self.global_content_layers + self.global_style_layers)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly copy (for logs)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _zero(ref: Tensor) -> Tensor:
    return torch.zeros((), dtype=ref.dtype, device=ref.device)


def total_loss(
    out_features: Mapping[str, Tensor],
    content_features: Mapping[str, Tensor],
    style_features: Mapping[str, Tensor],
    output: Tensor,
    content_regions: Regions,
    style_regions: Regions,
    config: LossConfig = LossConfig(),
) -> dict[str, Tensor]:
    """Region-level task-guided loss of METHOD §8 with every named term.

    out/content/style_features: layer name -> N×C×h×w features of O, I and S (S may have
    batch 1 and another size). output: O, N×3×H×W in [0, 1] (for ℓ_TV). content_regions:
    I's maps (also used for O); style_regions: S's maps at S's image size.

    L = α(λ_g Σ ℓ_gc + λ_l Σ ℓ_lc) + β(λ_g Σ ℓ_gs + λ_l Σ ℓ_ls) + θ ℓ_TV, where ℓ_gs uses
    background Grams and ℓ_ls attention Grams (one per attention channel).
    Keys: "gc/<layer>", "lc/<layer>", "gs/<layer>", "ls/<layer>" (unweighted per layer),
    "content_global", "content_local", "style_global", "style_local" (sums over layers),
    "content" (λ-weighted), "style" (λ-weighted), "tv" (0–255 scale), "total", and
    "empty_regions" (count of (sample, region, layer) style terms skipped as empty; no grad).
    """
    terms: dict[str, Tensor] = {}
    zero = _zero(output)
    cg = cl = sg = sl = zero
    empty = torch.zeros((), dtype=torch.long, device=output.device)
    for layer in config.global_content_layers:
        terms[f"gc/{layer}"] = v = content_loss(out_features[layer], content_features[layer])
        cg = cg + v
    for layer in config.local_content_layers:
        terms[f"lc/{layer}"] = v = local_content_loss(
            out_features[layer], content_features[layer], content_regions.attention
        )
        cl = cl + v
    for layer in config.global_style_layers:
        v, e = region_style_loss(
            out_features[layer], style_features[layer], content_regions.background,
            style_regions.background, config.min_region_area,
        )
        terms[f"gs/{layer}"] = v
        sg = sg + v
        empty = empty + e.sum()
    for layer in config.local_style_layers:
        v, e = region_style_loss(
            out_features[layer], style_features[layer], content_regions.attention,
            style_regions.attention, config.min_region_area,
        )
        terms[f"ls/{layer}"] = v
        sl = sl + v
        empty = empty + e.sum()
    content = config.lambda_global * cg + config.lambda_local * cl
    style = config.lambda_global * sg + config.lambda_local * sl
    tv = tv_loss(output, config.tv_scale)
    terms.update(
        content_global=cg, content_local=cl, style_global=sg, style_local=sl,
        content=content, style=style, tv=tv,
        total=config.alpha * content + config.beta * style + config.theta * tv,
        empty_regions=empty.to(output.dtype),
    )
    return terms


def perceptual_loss(
    out_features: Mapping[str, Tensor],
    content_features: Mapping[str, Tensor],
    style_features: Mapping[str, Tensor],
    output: Tensor,
    config: LossConfig = LossConfig(),
) -> dict[str, Tensor]:
    """Plain perceptual loss of Gatys / Johnson: no masks, no attention.

    L = α Σ_{config.global_content_layers} ℓ_gc + β Σ_{config.global_style_layers}
    ℓ_style(whole-image Grams) + θ ℓ_TV (λ_g, λ_l are not used).
    Keys: "c/<layer>", "s/<layer>", "content", "style", "tv", "total".
    """
    terms: dict[str, Tensor] = {}
    c = s = _zero(output)
    for layer in config.global_content_layers:
        terms[f"c/{layer}"] = v = content_loss(out_features[layer], content_features[layer])
        c = c + v
    for layer in config.global_style_layers:
        terms[f"s/{layer}"] = v = style_loss(out_features[layer], style_features[layer])
        s = s + v
    tv = tv_loss(output, config.tv_scale)
    terms.update(
        content=c, style=s, tv=tv,
        total=config.alpha * c + config.beta * s + config.theta * tv,
    )
    return terms
