"""The fast presets: outer_kernel, old model files without it, FLOPs, ONNX equal to torch."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.flop_counter import FlopCounterMode

from eyepurify.errors import WeightsError
from eyepurify.models.export import METADATA_KEY
from eyepurify.models.registry import load_model
from eyepurify.models.segmentation import PRESETS as SEG_PRESETS
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import PRESETS, TransformNetConfig, create_transform_net
from eyepurify.purify import packaged_weights


def _flops(net: torch.nn.Module, *args: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(*args)
    return float(fc.get_total_flops())


def test_outer_kernel_sets_the_first_and_last_conv() -> None:
    net = create_transform_net(TransformNetConfig(width=4, n_res=1, outer_kernel=5))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (5, 5) and convs[-1].kernel_size == (5, 5)
    y = net(torch.rand(1, 3, 37, 61), torch.zeros(1, 4, 37, 61))
    assert y.shape == (1, 3, 37, 61)
    with pytest.raises(ValueError, match="odd"):
        TransformNetConfig(outer_kernel=4)


def test_shipped_purifier_without_outer_kernel_loads_as_9() -> None:
    path = packaged_weights("purifier.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert "outer_kernel" not in json.loads(f.metadata()[METADATA_KEY])["net"]  # written before the field
    net, _ = load_model(path, "purifier")
    assert net.config.outer_kernel == 9
    assert net.encoder[0][1].kernel_size == (9, 9)


def test_bad_outer_kernel_in_a_file_is_a_one_line_error(tmp_path) -> None:
    src = packaged_weights("purifier.safetensors")
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    meta["net"]["outer_kernel"] = 4
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(src)), str(bad), metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(WeightsError, match="bad.safetensors.*outer_kernel"):
        load_model(bad, "purifier")


def test_fast_pair_is_at_most_a_quarter_of_the_shipped_flops() -> None:
    x, m = torch.rand(1, 3, 72, 120), torch.zeros(1, 4, 72, 120)
    shipped = _flops(create_transform_net("small").eval(), x, m) + _flops(create_segmentation_net("default").eval(), x)
    fast = _flops(create_transform_net("fast").eval(), x, m) + _flops(create_segmentation_net("fast").eval(), x)
    assert fast <= shipped / 4
    assert PRESETS["fast"].outer_kernel == 5 and SEG_PRESETS["fast"].width == 6


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fast_presets_onnx_equal_torch(backend: str) -> None:
    pytest.importorskip("onnxruntime")
    if backend == "openvino":
        pytest.importorskip("openvino")
    from eyepurify.backends import wrap_segmentation, wrap_transform

    from ..test_backends import ONNX_IMAGE_TOL, ONNX_LOGIT_TOL, _inputs, _randomise_bn

    torch.manual_seed(0)
    net, seg = _randomise_bn(create_transform_net("fast")), _randomise_bn(create_segmentation_net("fast"))
    on, os_ = wrap_transform(net, backend), wrap_segmentation(seg, backend)
    for n, h, w in ((2, 72, 120), (3, 37, 61), (1, 5, 7)):
        x, m = _inputs(n, h, w, seed=h)
        with torch.inference_mode():
            ref, sref = net(x, m), seg(x)
        assert (on(x, m) - ref).abs().max().item() <= ONNX_IMAGE_TOL
        assert (os_(x) - sref).abs().max().item() <= ONNX_LOGIT_TOL
    q, qs = wrap_transform(net, "int8"), wrap_segmentation(seg, "int8")
    x, m = _inputs(2, 36, 60)
    with torch.inference_mode():
        ref = net(x, m)
    assert (q(x, m) - ref).abs().mean().item() < 0.05 and qs(x).shape == (2, 4, 36, 60)
