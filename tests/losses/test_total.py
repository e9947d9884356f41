from __future__ import annotations

import dataclasses

import pytest
import torch

from eyepurify.losses.content import content_loss, local_content_loss
from eyepurify.losses.regions import Regions
from eyepurify.losses.style import region_style_loss, style_loss
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.losses.tv import tv_loss

SMALL = LossConfig(
    global_content_layers=("a",), local_content_layers=("b",),
    global_style_layers=("a", "b"), local_style_layers=("a",), theta=1e-3,
)


def _feats(g: torch.Generator, n: int, size: tuple[int, int], dtype=torch.float32) -> dict[str, torch.Tensor]:
    h, w = size
    return {
        "a": torch.randn(n, 3, h, w, generator=g, dtype=dtype),
        "b": torch.randn(n, 4, h // 2, w // 2, generator=g, dtype=dtype),
    }


def _regions(labels: torch.Tensor, per_class: bool = False, dtype=torch.float32) -> Regions:
    r = Regions.from_labels(labels, per_class)
    return Regions(r.attention.to(dtype), r.background.to(dtype))


def _labels(n: int, h: int, w: int) -> torch.Tensor:
    lab = torch.zeros(n, h, w, dtype=torch.long)
    lab[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 2
    lab[:, h // 2 - 1: h // 2 + 1, w // 2 - 1: w // 2 + 1] = 3
    lab[:, :, : w // 8] = 1
    return lab


def test_config_defaults_and_frozen():
    c = LossConfig()
    assert (c.alpha, c.beta) == (1e2, 1e4)
    assert 1e-7 <= c.theta <= 1e-5
    assert c.global_content_layers == ("conv3_2",) and c.local_content_layers == ("conv4_2",)
    assert c.global_style_layers == ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
    assert c.local_style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert len(c.masked_layers) == 12 and len(set(c.masked_layers)) == 12
    assert c.plain_layers == ("conv3_2", "conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.alpha = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        LossConfig(beta=-1.0)
    with pytest.raises(ValueError):
        LossConfig(theta=float("nan"))
    assert c.as_dict()["alpha"] == 1e2


def test_total_matches_its_parts():
    g = torch.Generator().manual_seed(0)
    fo, fi, fs = _feats(g, 2, (8, 12)), _feats(g, 2, (8, 12)), _feats(g, 1, (6, 10))
    out = torch.rand(2, 3, 8, 12, generator=g)
    ri, rs = _regions(_labels(2, 8, 12)), _regions(_labels(1, 6, 10))
    cfg = dataclasses.replace(SMALL, lambda_global=0.7, lambda_local=2.0)
    t = total_loss(fo, fi, fs, out, ri, rs, cfg)
    assert set(t) == {
        "gc/a", "lc/b", "gs/a", "gs/b", "ls/a", "content_global", "content_local",
        "style_global", "style_local", "content", "style", "tv", "total", "empty_regions",
    }
    assert torch.allclose(t["gc/a"], content_loss(fo["a"], fi["a"]))
    assert torch.allclose(t["lc/b"], local_content_loss(fo["b"], fi["b"], ri.attention))
    assert torch.allclose(t["gs/b"], region_style_loss(fo["b"], fs["b"], ri.background, rs.background)[0])
    assert torch.allclose(t["ls/a"], region_style_loss(fo["a"], fs["a"], ri.attention, rs.attention)[0])
    assert torch.allclose(t["style_global"], t["gs/a"] + t["gs/b"])
    content = 0.7 * t["gc/a"] + 2.0 * t["lc/b"]
    style = 0.7 * (t["gs/a"] + t["gs/b"]) + 2.0 * t["ls/a"]
    assert torch.allclose(t["total"], 1e2 * content + 1e4 * style + 1e-3 * tv_loss(out))
    assert t["empty_regions"].item() == 0
    assert all(torch.isfinite(v) for v in t.values())


def test_total_of_style_against_itself_has_no_style_and_content_against_itself_none():
    g = torch.Generator().manual_seed(1)
    f = _feats(g, 1, (8, 8))
    r = _regions(_labels(1, 8, 8), per_class=True)
    out = torch.rand(1, 3, 8, 8, generator=g)
    t = total_loss(f, f, f, out, r, r, SMALL)
    assert t["content"].item() == 0.0 and t["style"].item() == 0.0
    assert t["total"].item() == pytest.approx(SMALL.theta * tv_loss(out).item())


def test_total_with_empty_attention_is_finite_and_counts_empty_terms():
    g = torch.Generator().manual_seed(2)
    fo, fi, fs = _feats(g, 2, (8, 8)), _feats(g, 2, (8, 8)), _feats(g, 1, (8, 8))
    out = torch.rand(2, 3, 8, 8, generator=g, requires_grad=True)
    skin = _regions(torch.zeros(2, 8, 8, dtype=torch.long))
    fo = {k: v.requires_grad_() for k, v in fo.items()}
    t = total_loss(fo, fi, fs, out, skin, _regions(_labels(1, 8, 8)), SMALL)
    assert t["content_local"].item() == 0.0 and t["style_local"].item() == 0.0
    assert t["empty_regions"].item() == 2  # one local style layer × two samples
    # with no attention the background is the whole image: global style = whole-image Grams
    for layer in ("a", "b"):
        v, _ = region_style_loss(fo[layer], fs[layer], skin.background, torch.ones(1, 1, 8, 8))
        assert torch.allclose(v, style_loss(fo[layer], fs[layer]))
    t["total"].backward()
    assert all(torch.isfinite(v.grad).all() for v in fo.values())


def test_perceptual_loss_parts():
    g = torch.Generator().manual_seed(3)
    fo, fi, fs = _feats(g, 1, (8, 8)), _feats(g, 1, (8, 8)), _feats(g, 1, (10, 6))
    out = torch.rand(1, 3, 8, 8, generator=g)
    t = perceptual_loss(fo, fi, fs, out, SMALL)
    assert set(t) == {"c/a", "s/a", "s/b", "content", "style", "tv", "total"}
    style = style_loss(fo["a"], fs["a"]) + style_loss(fo["b"], fs["b"])
    expect = 1e2 * content_loss(fo["a"], fi["a"]) + 1e4 * style + SMALL.theta * tv_loss(out)
    assert torch.allclose(t["total"], expect)


def test_gradcheck_total_and_perceptual():
    g = torch.Generator().manual_seed(4)
    d = torch.float64
    fo, fi, fs = _feats(g, 1, (4, 4), d), _feats(g, 1, (4, 4), d), _feats(g, 1, (4, 2), d)
    out = torch.rand(1, 3, 4, 4, generator=g, dtype=d)
    ri, rs = _regions(_labels(1, 4, 4), dtype=d), _regions(_labels(1, 4, 2), dtype=d)
    cfg = dataclasses.replace(SMALL, alpha=1.0, beta=1.0)

    def f(a, b, o):
        return total_loss({"a": a, "b": b}, fi, fs, o, ri, rs, cfg)["total"]

    def p(a, b, o):
        return perceptual_loss({"a": a, "b": b}, fi, fs, o, cfg)["total"]

    args = (fo["a"].requires_grad_(), fo["b"].requires_grad_(), out.requires_grad_())
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradcheck(p, args)


def test_gradcheck_total_wrt_soft_attention():
    g = torch.Generator().manual_seed(5)
    d = torch.float64
    fo, fi, fs = _feats(g, 1, (4, 4), d), _feats(g, 1, (4, 4), d), _feats(g, 1, (4, 4), d)
    out = torch.rand(1, 3, 4, 4, generator=g, dtype=d)
    rs = _regions(_labels(1, 4, 4), dtype=d)
    att = (0.1 + 0.8 * torch.rand(1, 1, 4, 4, generator=g, dtype=d)).requires_grad_()
    cfg = dataclasses.replace(SMALL, alpha=1.0, beta=1.0)
    assert torch.autograd.gradcheck(
        lambda a: total_loss(fo, fi, fs, out, Regions.from_attention(a), rs, cfg)["total"], (att,)
    )
