"""Inference backends: BatchNorm folding, ONNX Runtime equal to torch, int8, the cache, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from eyepurify.backends import accelerate, fold_batchnorm, resolve_backend, state_digest
from eyepurify.cli import main
from eyepurify.errors import EyepurifyError
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net

#: ONNX Runtime fp32 vs torch: images in [0, 1] and logits, absolute (documented in eyepurify.backends)
ONNX_IMAGE_TOL = 1e-4
ONNX_LOGIT_TOL = 1e-3


def _randomise_bn(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return _randomise_bn(create_transform_net("test_tiny")), _randomise_bn(create_segmentation_net("test_tiny"))


@pytest.fixture
def cache():
    """The session's export cache (tests/conftest.py sets EYEPURIFY_CACHE_DIR to a temp folder)."""
    from eyepurify.backends import cache_dir

    return cache_dir()


def _inputs(n: int = 3, h: int = 37, w: int = 61, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    m = torch.nn.functional.one_hot(torch.randint(0, 4, (n, h, w), generator=g), 4).permute(0, 3, 1, 2).float()
    return x, m


def test_fold_batchnorm_keeps_outputs_and_drops_bn(tiny):
    net, seg = tiny
    x, m = _inputs()
    for orig, args in ((net, (x, m)), (seg, (x,))):
        folded = fold_batchnorm(orig)
        assert not any(isinstance(k, torch.nn.BatchNorm2d) for k in folded.modules())
        assert any(isinstance(k, torch.nn.BatchNorm2d) for k in orig.modules())  # the original is untouched
        with torch.inference_mode():
            assert torch.allclose(folded(*args), orig(*args), atol=1e-5)


def test_state_digest_tracks_weights(tiny):
    net, _ = tiny
    other = create_transform_net("test_tiny")
    assert state_digest(net) == state_digest(net)
    assert state_digest(net) != state_digest(other)


def test_unknown_backend_is_one_line_error():
    with pytest.raises(EyepurifyError, match="unknown backend"):
        resolve_backend("tensorrt")


def test_onnx_without_onnxruntime_says_install_fast(monkeypatch, tmp_path, capsys):
    import eyepurify.backends as b

    monkeypatch.setattr(b, "onnx_available", lambda: False)
    monkeypatch.setattr(b, "openvino_available", lambda: False)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(EyepurifyError, match=r"install eyepurify\[fast\]"):
        resolve_backend("onnx")
    (tmp_path / "in").mkdir()
    rc = main(["purify", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--backend", "onnx"])
    err = capsys.readouterr().err
    assert rc == 2 and "install eyepurify[fast]" in err and len(err.strip().splitlines()) == 1




def test_openvino_missing_says_install_openvino(monkeypatch):
    import eyepurify.backends as b

    monkeypatch.setattr(b, "openvino_available", lambda: False)
    for name in ("openvino", "bf16"):
        with pytest.raises(EyepurifyError, match=r"install eyepurify\[openvino\]"):
            resolve_backend(name)
    assert resolve_backend("auto") == ("onnx" if b.onnx_available() else "torch")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_onnx_equals_torch_on_odd_sizes_and_batches(tiny, cache, backend):
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")
    from eyepurify.backends import wrap_segmentation, wrap_transform

    net, seg = tiny
    on, os_ = wrap_transform(net, backend), wrap_segmentation(seg, backend)
    for n, h, w in ((1, 36, 60), (3, 37, 61), (2, 72, 120), (1, 5, 7)):
        x, m = _inputs(n, h, w, seed=h)
        with torch.inference_mode():
            ref, sref = net(x, m), seg(x)
        y, s = on(x, m), os_(x)
        assert y.shape == ref.shape and s.shape == sref.shape
        assert (y - ref).abs().max().item() <= ONNX_IMAGE_TOL
        assert (s - sref).abs().max().item() <= ONNX_LOGIT_TOL
    files = sorted(p.name for p in cache.iterdir())
    assert any(f.startswith("purifier-") and f.endswith("-fp32.onnx") for f in files)
    assert all(not f.startswith(".") for f in files)  # no temp files left
    # cached: a second runner reuses the file (same weights → same name, not rewritten)
    path = on.path
    mtime = path.stat().st_mtime_ns
    assert wrap_transform(net, backend).path == path and path.stat().st_mtime_ns == mtime


def test_bf16_runs_close_to_fp32(tiny, cache):
    pytest.importorskip("openvino")
    from eyepurify.backends import wrap_segmentation, wrap_transform

    net, seg = tiny
    x, m = _inputs(2, 36, 60)
    with torch.inference_mode():
        ref, sref = net(x, m), seg(x)
    y, s = wrap_transform(net, "bf16")(x, m), wrap_segmentation(seg, "bf16")(x)
    assert y.shape == ref.shape and s.shape == sref.shape and torch.isfinite(y).all()
    assert (y - ref).abs().max().item() < 0.02  # bfloat16 keeps ~3 significant digits (quality: bench throughput)
    assert (s - sref).abs().max().item() < 0.1 * max(1.0, sref.abs().max().item())


def test_int8_runs_close_to_fp32(tiny, cache):
    pytest.importorskip("onnxruntime")
    from eyepurify.backends import wrap_segmentation, wrap_transform

    net, seg = tiny
    x, m = _inputs(2, 36, 60)
    q, qs = wrap_transform(net, "int8"), wrap_segmentation(seg, "int8")
    assert q.path.name.endswith(".onnx") and "int8" in q.path.name
    with torch.inference_mode():
        ref = net(x, m)
    y = q(x, m)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    assert (y - ref).abs().mean().item() < 0.05  # quantised, not broken (quality: bench throughput)
    assert qs(x).shape == (2, 4, 36, 60)


def test_shipped_models_onnx_equal_torch_end_to_end(cache):
    """The shipped purifier + segmenter through Purifier: uint8 outputs within 1 level of
    torch (float differences ≤ 1e-4 can flip a rounding) and identical label maps."""
    pytest.importorskip("onnxruntime")
    from eyepurify.backends import openvino_available
    from eyepurify.bench.paired import render_pairs
    from eyepurify.purify import Purifier

    data = render_pairs(6, (36, 60), seed=3)
    ref = Purifier.from_pretrained()
    a = ref.process(data.wild)
    for backend in ("onnx", "openvino") if openvino_available() else ("onnx",):
        fast = Purifier.from_pretrained()
        assert accelerate(fast, backend) == backend
        b = fast.process(data.wild)
        for ra, rb in zip(a, b, strict=True):
            assert np.array_equal(ra.labels, rb.labels), backend
            assert np.abs(ra.image.astype(int) - rb.image.astype(int)).max() <= 1, backend
    assert accelerate(Purifier.from_pretrained(), "auto") == ("openvino" if openvino_available() else "onnx")


_SIGNAL_AFTER_TWO_RUNNERS = """
import gc, os, signal, torch
from eyepurify.backends import wrap_segmentation, wrap_transform
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net
a = wrap_transform(create_transform_net("test_tiny").eval(), "openvino", 1)
b = wrap_segmentation(create_segmentation_net("test_tiny").eval(), "openvino", 1)
del a; gc.collect()
del b; gc.collect()  # in the order they were made: each OpenVINO Core restored the stack it found
got = []
signal.signal(signal.SIGINT, lambda *_: got.append(1))
os.kill(os.getpid(), signal.SIGINT)
print("signal handled" if got else "signal lost")
"""


def test_a_signal_after_two_openvino_runners_is_handled_not_a_crash(tmp_path):
    # the process's one OpenVINO Core (runners.openvino_core): with a Core per runner, the
    # main thread was left on an unmapped alternate signal stack and Ctrl-C crashed (exit 139)
    pytest.importorskip("openvino")
    env = {**os.environ, "EYEPURIFY_CACHE_DIR": str(tmp_path), "PYTHONFAULTHANDLER": "1"}
    r = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER_TWO_RUNNERS], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("signal handled"), (r.returncode, r.stderr[-2000:])
