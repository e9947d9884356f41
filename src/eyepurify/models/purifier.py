"""The trained modules of a purifier run: the transformation network and its attention subnet."""

from __future__ import annotations

from torch import nn

from eyepurify.models.attention import AttentionNet
from eyepurify.models.transformer import TransformNet, TransformNetConfig
from eyepurify.sample import NUM_CLASSES


class PurifierModel(nn.Module):
    """The trained modules of a run: transformation network (+ attention subnet for "ours").

    ``net`` maps N×3×H×W images in [0, 1] (+ N×mask_channels×H×W one-hot masks) to
    N×3×H×W in [0, 1]; ``attention`` predicts the region weights the region-level loss uses
    from the image and its one-hot label map (4 channels). It exists when ``attention`` is
    True (default: when the network reads masks; v2 networks without a mask input still
    train with it). Only ``net`` is exported for inference.
    """

    def __init__(self, net_config: TransformNetConfig, attention_width: int = 8, attention: bool | None = None) -> None:
        super().__init__()
        self.net = TransformNet(net_config)
        use = bool(net_config.mask_channels) if attention is None else attention
        self.attention = AttentionNet(net_config.mask_channels or NUM_CLASSES, attention_width) if use else None
