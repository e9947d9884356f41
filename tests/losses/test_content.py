from __future__ import annotations

import pytest
import torch

from eyepurify.losses.content import content_loss, local_content_loss


def _f(vals) -> torch.Tensor:
    return torch.tensor(vals, dtype=torch.float64).reshape(1, 1, 2, 2)


def test_content_hand_value():
    # Σ (1,2,3,4)² = 30; 1/(2·N·M) = 1/8
    assert content_loss(_f([1, 2, 3, 4]), torch.zeros(1, 1, 2, 2, dtype=torch.float64)).item() == pytest.approx(3.75)


def test_content_zero_for_equal_and_batch_mean():
    a = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    assert content_loss(a, a).item() == 0.0
    b = a.clone()
    b[1] += 1.0  # only sample 1 differs: per-sample loss 0.5, batch mean 0.5/3
    assert content_loss(b, a).item() == pytest.approx(0.5 / 3, rel=1e-6)


def test_local_content_hand_value():
    att = _f([1, 0, 0, 1])
    # (1·1)² + (4·1)² = 17, over 2·1·4
    v = local_content_loss(_f([1, 2, 3, 4]), torch.zeros(1, 1, 2, 2, dtype=torch.float64), att)
    assert v.item() == pytest.approx(17 / 8)


def test_local_content_resizes_attention():
    f_out = _f([1, 2, 3, 4])
    att = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    att[0, 0, :2, :2] = 1.0  # top-left layer cell fully covered
    v = local_content_loss(f_out, torch.zeros_like(f_out), att)
    assert v.item() == pytest.approx(1 / 8)


def test_local_content_ignores_outside_region():
    g = torch.Generator().manual_seed(2)
    f_out, f_ref = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    att = torch.zeros(2, 1, 4, 5)
    att[:, :, 1:3, 1:4] = 1.0
    base = local_content_loss(f_out, f_ref, att)
    changed = f_out + 100.0 * (1 - att) * torch.randn(2, 3, 4, 5, generator=g)
    assert torch.allclose(local_content_loss(changed, f_ref, att), base)
    assert not torch.allclose(content_loss(changed, f_ref), content_loss(f_out, f_ref))


def test_local_content_per_class_sum_equals_union_for_disjoint_masks():
    g = torch.Generator().manual_seed(3)
    f_out, f_ref = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    a = torch.zeros(1, 2, 4, 4)
    a[0, 0, :2] = 1.0
    a[0, 1, 3:] = 1.0
    union = a.sum(1, keepdim=True)
    assert torch.allclose(local_content_loss(f_out, f_ref, a), local_content_loss(f_out, f_ref, union))


def test_local_content_empty_is_zero():
    f = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(4))
    v = local_content_loss(f, torch.zeros_like(f), torch.zeros(1, 1, 3, 3))
    assert v.item() == 0.0


def test_shape_errors():
    with pytest.raises(ValueError):
        content_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError):
        local_content_loss(torch.zeros(2, 2, 3, 3), torch.zeros(2, 2, 3, 3), torch.zeros(3, 1, 3, 3))


def test_gradcheck_content_and_local():
    g = torch.Generator().manual_seed(5)
    f_out = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f_ref = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    att = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(content_loss, (f_out, f_ref))
    assert torch.autograd.gradcheck(local_content_loss, (f_out, f_ref, att))


def test_inputs_not_modified():
    g = torch.Generator().manual_seed(6)
    f_out, f_ref, att = torch.randn(1, 2, 3, 3, generator=g), torch.randn(1, 2, 3, 3, generator=g), torch.rand(1, 1, 3, 3, generator=g)
    copies = [t.clone() for t in (f_out, f_ref, att)]
    local_content_loss(f_out, f_ref, att)
    content_loss(f_out, f_ref)
    for t, c in zip((f_out, f_ref, att), copies, strict=True):
        assert torch.equal(t, c)


def test_content_hand_value_two_channels():
    f = torch.tensor([1, 2, 3, 4, 0, 1, 0, 1], dtype=torch.float64).reshape(1, 2, 2, 2)
    # Σ f² = 32; 1/(2·N·M) = 1/16
    assert content_loss(f, torch.zeros_like(f)).item() == pytest.approx(2.0)
    assert local_content_loss(f, torch.zeros_like(f), torch.ones(1, 1, 2, 2)).item() == pytest.approx(2.0)
