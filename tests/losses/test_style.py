from __future__ import annotations

import pytest
import torch

from eyepurify.losses.style import gram_matrix, region_gram, region_style_loss, style_loss


def _f(vals, c: int = 1) -> torch.Tensor:
    return torch.tensor(vals, dtype=torch.float64).reshape(1, c, 2, 2)


def test_gram_hand_value():
    f = _f([1, 2, 3, 4, 0, 1, 0, 1], c=2)
    assert torch.equal(gram_matrix(f), torch.tensor([[[30.0, 6.0], [6.0, 2.0]]], dtype=torch.float64))


def test_region_gram_hand_value_and_full_region_equals_gram():
    f = _f([1, 2, 3, 4])
    r = _f([1, 1, 0, 0])
    assert region_gram(f, r).shape == (1, 1, 1, 1)
    assert region_gram(f, r).item() == 5.0
    f2 = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(region_gram(f2, torch.ones(2, 1, 4, 5, dtype=torch.float64))[:, 0], gram_matrix(f2))


def test_style_hand_value():
    # Ĝ[O] = 30 / 4, Ĝ[S] = 0; 1/(4·1²)
    v = style_loss(_f([1, 2, 3, 4]), torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    assert v.item() == pytest.approx(7.5**2 / 4)


def test_region_style_hand_value():
    # O: region covers (1, 2): G = 5, area 2 -> 2.5. S: all 2s over 4 px: G = 16, area 4 -> 4
    v, empty = region_style_loss(_f([1, 2, 3, 4]), _f([2, 2, 2, 2]), _f([1, 1, 0, 0]), _f([1, 1, 1, 1]))
    assert v.item() == pytest.approx((2.5 - 4.0) ** 2 / 4)
    assert empty.tolist() == [[False]]


def test_style_of_itself_is_zero():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(2, 3, 4, 5, generator=g)
    r = torch.rand(2, 2, 8, 10, generator=g)
    assert style_loss(f, f).item() == 0.0
    v, _ = region_style_loss(f, f, r, r)
    assert v.item() == 0.0


def test_style_is_size_independent_by_area_normalisation():
    f = torch.randn(1, 3, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    tiled = f.repeat(1, 1, 2, 2)  # same statistics, four times the area
    assert gram_matrix(tiled).allclose(4 * gram_matrix(f))
    assert style_loss(f, tiled).item() == pytest.approx(0.0, abs=1e-12)


def test_duplicating_region_content_doubles_gram_but_not_loss():
    g = torch.Generator().manual_seed(3)
    f_s = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=g)
    r_s = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    f1 = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=g)
    r1 = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    r1[..., 0, :] = 1.0  # region: first row
    f2 = f1.clone()
    f2[..., 1, :] = f1[..., 0, :]  # duplicate the region's content into row 2
    r2 = r1.clone()
    r2[..., 1, :] = 1.0
    assert torch.allclose(region_gram(f2, r2), 2 * region_gram(f1, r1))
    v1, _ = region_style_loss(f1, f_s, r1, r_s)
    v2, _ = region_style_loss(f2, f_s, r2, r_s)
    assert v2.item() == pytest.approx(v1.item(), rel=1e-12)
    assert v1.item() > 0


def test_region_style_ignores_outside_region():
    g = torch.Generator().manual_seed(4)
    f_o, f_s = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    r = torch.zeros(1, 1, 4, 4)
    r[..., 1:3, 1:3] = 1.0
    base, _ = region_style_loss(f_o, f_s, r, r)
    changed = f_o + 50 * (1 - r) * torch.randn(1, 3, 4, 4, generator=g)
    assert torch.allclose(region_style_loss(changed, f_s, r, r)[0], base)


def test_empty_region_is_finite_zero_with_flag_and_finite_grad():
    g = torch.Generator().manual_seed(5)
    f_o = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    f_s = torch.randn(1, 3, 4, 4, generator=g)
    r_o = torch.zeros(2, 2, 4, 4)
    r_o[1, 0] = 1.0  # sample 1, channel 0 present; everything else empty in O
    r_s = torch.ones(1, 2, 4, 4)
    v, empty = region_style_loss(f_o, f_s, r_o, r_s)
    assert empty.tolist() == [[True, True], [False, True]]
    assert torch.isfinite(v) and v.item() > 0
    v.backward()
    assert torch.isfinite(f_o.grad).all()
    assert torch.equal(f_o.grad[0], torch.zeros(3, 4, 4))
    # all empty: exactly zero
    v0, e0 = region_style_loss(f_o.detach(), f_s, torch.zeros(2, 1, 4, 4), torch.ones(1, 1, 4, 4))
    assert v0.item() == 0.0 and bool(e0.all())
    # empty in the style image only: also skipped
    v1, e1 = region_style_loss(f_o.detach(), f_s, torch.ones(2, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert v1.item() == 0.0 and bool(e1.all())


def test_style_batch_broadcast_equals_repeat_and_sizes_may_differ():
    g = torch.Generator().manual_seed(6)
    f_o = torch.randn(3, 2, 4, 6, generator=g)
    f_s = torch.randn(1, 2, 5, 3, generator=g)
    r_o = torch.rand(3, 1, 8, 12, generator=g)
    r_s = torch.rand(1, 1, 10, 6, generator=g)
    v1, _ = region_style_loss(f_o, f_s, r_o, r_s)
    v3, _ = region_style_loss(f_o, f_s.repeat(3, 1, 1, 1), r_o, r_s.repeat(3, 1, 1, 1))
    assert torch.allclose(v1, v3)
    assert torch.allclose(style_loss(f_o, f_s), style_loss(f_o, f_s.repeat(3, 1, 1, 1)))


def test_per_class_sum():
    g = torch.Generator().manual_seed(7)
    f_o, f_s = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    r = torch.zeros(1, 2, 4, 4)
    r[0, 0, :2] = 1
    r[0, 1, 2:] = 1
    both, _ = region_style_loss(f_o, f_s, r, r)
    a, _ = region_style_loss(f_o, f_s, r[:, :1], r[:, :1])
    b, _ = region_style_loss(f_o, f_s, r[:, 1:], r[:, 1:])
    assert torch.allclose(both, a + b)


def test_shape_errors():
    with pytest.raises(ValueError):
        style_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError):
        style_loss(torch.zeros(2, 2, 3, 3), torch.zeros(3, 2, 3, 3))
    with pytest.raises(ValueError):
        region_style_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.ones(1, 1, 3, 3), torch.ones(1, 2, 3, 3))


def test_gradcheck_style_terms():
    g = torch.Generator().manual_seed(8)
    f_o = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f_s = torch.randn(1, 2, 4, 2, dtype=torch.float64, generator=g, requires_grad=True)
    r_o = (0.2 + 0.8 * torch.rand(2, 2, 6, 6, dtype=torch.float64, generator=g)).requires_grad_()
    r_s = (0.2 + 0.8 * torch.rand(1, 2, 4, 2, dtype=torch.float64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(style_loss, (f_o, f_s))
    assert torch.autograd.gradcheck(lambda *a: region_style_loss(*a)[0], (f_o, f_s, r_o, r_s))
    assert torch.autograd.gradcheck(region_gram, (f_o, r_o))


def test_inputs_not_modified():
    g = torch.Generator().manual_seed(9)
    ts = [torch.randn(1, 2, 3, 3, generator=g), torch.randn(1, 2, 3, 3, generator=g),
          torch.rand(1, 1, 6, 6, generator=g), torch.rand(1, 1, 3, 3, generator=g)]
    copies = [t.clone() for t in ts]
    region_style_loss(*ts)
    style_loss(ts[0], ts[1])
    for t, c in zip(ts, copies, strict=True):
        assert torch.equal(t, c)


def test_style_hand_value_two_channels():
    # Ĝ = [[30, 6], [6, 2]] / 4; Σ Ĝ² = 56.25 + 2·2.25 + 0.25 = 61; 1/(4·2²)
    f = _f([1, 2, 3, 4, 0, 1, 0, 1], c=2)
    assert style_loss(f, torch.zeros_like(f)).item() == pytest.approx(61 / 16)
    v, _ = region_style_loss(f, torch.zeros_like(f), torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    assert v.item() == pytest.approx(61 / 16)
