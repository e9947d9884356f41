"""The VGG-19 backbone: taps, depth, and its torchvision weight files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from eyepurify.errors import WeightsError
from eyepurify.models.backbones import (
    VGG19_ENV,
    VGG19_FILE,
    VGG19Backbone,
    create_backbone,
    load_vgg19_state_dict,
    resolve_vgg19_weights,
)
from eyepurify.models.backbones.vgg import VGG19Features
from tests.models.backbones.test_base import _image, _make

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
