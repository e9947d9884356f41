"""Loss terms as pure functions (METHOD §8, §15): content, region Grams / style, TV, totals,
paired and task-consistency terms."""

from eyepurify.losses.content import content_loss, local_content_loss
from eyepurify.losses.paired import feature_loss, pixel_loss
from eyepurify.losses.regions import Regions, class_maps, region_area, resize_maps
from eyepurify.losses.style import (
    gram_matrix,
    region_gram,
    region_style_loss,
    softmax_features,
    style_loss,
)
from eyepurify.losses.task import gaze_consistency, gaze_input, segmentation_consistency
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.losses.tv import tv_loss

__all__ = [
    "LossConfig",
    "Regions",
    "class_maps",
    "content_loss",
    "feature_loss",
    "gaze_consistency",
    "gaze_input",
    "gram_matrix",
    "local_content_loss",
    "pixel_loss",
    "perceptual_loss",
    "region_area",
    "region_gram",
    "region_style_loss",
    "resize_maps",
    "segmentation_consistency",
    "softmax_features",
    "style_loss",
    "total_loss",
    "tv_loss",
]
