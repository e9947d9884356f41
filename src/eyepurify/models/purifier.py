"""The trained modules of a purifier run: the transformation network and its attention subnet."""

from __future__ import annotations

from torch import nn

from eyepurify.models.attention import AttentionNet
from eyepurify.models.transformer import TransformNet, TransformNetConfig


class PurifierModel(nn.Module):
    """The trained modules of a run: transformation network (+ attention subnet for "ours").

    ``net`` maps N×3×H×W images in [0, 1] (+ N×mask_channels×H×W one-hot masks) to
    N×3×H×W in [0, 1]; ``attention`` (None without mask channels) predicts the region
    weights it is trained with. Only ``net`` is exported for inference.
    """

    def __init__(self, net_config: TransformNetConfig, attention_width: int = 8) -> None:
        super().__init__()
        self.net = TransformNet(net_config)
        self.attention = AttentionNet(net_config.mask_channels, attention_width) if net_config.mask_channels else None
