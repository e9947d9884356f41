"""GPU equality and training (issue 21): ``pytest -m gpu``; every test skips without CUDA.

fp32 on the GPU (TF32 off) equals the CPU within the ONNX tests' tolerances (images 1e-4,
logits 1e-3); bf16 autocast stays within PSNR_BF16 dB of the CPU's fp32 output on paired
renders; training runs there and resumes bit-exactly on the same device; no tensor of a
forward/backward pass leaves the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

#: the ONNX tests' tolerances (tests/test_backends.py): images, logits
IMAGE_TOL, LOGIT_TOL = 1e-4, 1e-3
#: bf16 output vs the CPU's fp32 output on paired renders, dB
PSNR_BF16 = 35.0


def _renders(n: int = 16, seed: int = 0):  # type: ignore[no-untyped-def]
    from eyepurify.data.render import render_pair, sample_params

    rng = np.random.default_rng(seed)
    return [render_pair(sample_params(rng), (72, 120), rng=rng)[0] for _ in range(n)]


def _pair(precision: str):  # type: ignore[no-untyped-def]
    from eyepurify.backends import accelerate
    from eyepurify.device import make_placement
    from eyepurify.purify import Purifier

    cpu = Purifier.from_pretrained(device="cpu")
    gpu = Purifier.from_pretrained(device=make_placement("cuda", precision))
    accelerate(cpu, "torch")
    accelerate(gpu, "torch")
    return cpu, gpu


def test_purifier_and_segmenter_fp32_equal_the_cpu():
    from eyepurify.tensors import images_to_tensor, labels_to_tensor

    cpu, gpu = _pair("fp32")
    samples = _renders()
    x = images_to_tensor([s.image for s in samples])
    lab = labels_to_tensor([s.labels for s in samples])
    a, b = cpu.purify_tensor(x, lab), gpu.purify_tensor(x, lab)
    assert b.device.type == "cpu" and float((a - b).abs().max()) <= IMAGE_TOL
    la, lb = cpu.segmenter.model(x), gpu.segmenter.model(x)
    assert float((la - lb).abs().max()) <= LOGIT_TOL
    # whole pipeline (eye found, masks predicted, pasted back): uint8 equal up to one rounding step
    ims = [s.image for s in samples]
    for ya, yb in zip(cpu.purify_arrays(ims), gpu.purify_arrays(ims), strict=True):
        assert np.abs(ya.astype(int) - yb.astype(int)).max() <= 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_psnr_on_paired_renders(precision):
    from eyepurify.device import bf16_supported

    if precision == "bf16" and not bf16_supported(torch.device("cuda")):
        pytest.skip("this GPU has no bfloat16")
    cpu, gpu = _pair(precision)
    ims = [s.image for s in _renders(32, 1)]
    a = np.stack(cpu.purify_arrays(ims)).astype(np.float64)
    b = np.stack(gpu.purify_arrays(ims)).astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / max(float(np.mean((a - b) ** 2)), 1e-10))
    print(f"{precision} vs CPU fp32: {psnr:.1f} dB")
    assert psnr >= PSNR_BF16


def test_forward_backward_stays_on_the_gpu():
    from eyepurify.device import make_placement
    from eyepurify.train.purifier import (
        Objective,
        PurifierTrainConfig,
        create_loss_network,
        create_model,
    )

    from .test_device import DeviceCheck, _purifier_batch

    cfg = PurifierTrainConfig(content=("c",), style=("s",), net="test_tiny", backbone="lite0", size=(16, 24), batch=2)
    p = make_placement("cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16")
    model = create_model(cfg)
    p.module(model)
    objective = Objective(model, p.module(create_loss_network(cfg)), cfg, None)
    batch = p.to(_purifier_batch())
    with DeviceCheck("cuda") as check, p.autocast():
        obj, *_ = objective(*batch)
        obj.backward()
    assert not check.bad, check.bad[:5]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_the_gpu_resumes_bit_exactly(tmp_path, precision):
    from safetensors.torch import load_file

    from eyepurify.device import make_placement
    from eyepurify.train.purifier import PurifierTrainConfig, train_purifier

    from .train.test_purifier import _folder

    c, s = _folder(tmp_path / "c", 6, 0), _folder(tmp_path / "s", 2, 1)

    def cfg(steps: int) -> PurifierTrainConfig:
        return PurifierTrainConfig(content=(str(c),), style=(str(s),), net="test_tiny", backbone="test_tiny",
                                   size=(16, 24), batch=2, steps=steps, val_every=2, sample_every=2, checkpoint_every=2)

    p = make_placement("cuda", precision)
    straight = train_purifier(cfg(4), tmp_path / "a", progress=False, device=p)
    train_purifier(cfg(2), tmp_path / "b", progress=False, device=p)
    resumed = train_purifier(cfg(4), tmp_path / "b", resume=True, progress=False, device=p)
    sa, sb = load_file(straight), load_file(resumed)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
