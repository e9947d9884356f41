"""Loss terms as pure functions (METHOD §8): content, region Grams / style, TV, totals."""

from eyepurify.losses.content import content_loss, local_content_loss
from eyepurify.losses.regions import Regions, class_maps, region_area, resize_maps
from eyepurify.losses.style import gram_matrix, region_gram, region_style_loss, style_loss
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.losses.tv import tv_loss

__all__ = [
    "LossConfig",
    "Regions",
    "class_maps",
    "content_loss",
    "gram_matrix",
    "local_content_loss",
    "perceptual_loss",
    "region_area",
    "region_gram",
    "region_style_loss",
    "resize_maps",
    "style_loss",
    "total_loss",
    "tv_loss",
]
