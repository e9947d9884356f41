from __future__ import annotations

import pytest
import torch

from eyepurify.losses.tv import tv_loss


def test_tv_hand_value_and_scale():
    img = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]], dtype=torch.float64)
    # dx: 0.5² + 0² = 0.25; dy: 1² + 0.5² = 1.25
    assert tv_loss(img, scale=1.0).item() == pytest.approx(1.5)
    assert tv_loss(img).item() == pytest.approx(1.5 * 255**2)
    # the default is exactly the TV of the same image stored on 0–255
    assert tv_loss(img).item() == pytest.approx(tv_loss(img * 255, scale=1.0).item())


def test_tv_constant_is_zero_and_batch_mean():
    assert tv_loss(torch.full((2, 3, 4, 5), 0.3)).item() == 0.0
    a = torch.zeros(2, 1, 2, 2)
    a[1, 0, 0, 0] = 1.0  # sample 1: two unit differences -> 2; mean 1
    assert tv_loss(a, scale=1.0).item() == pytest.approx(1.0)


def test_tv_gradcheck():
    img = torch.rand(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tv_loss(x, scale=3.0), (img,))


def test_tv_rejects_wrong_rank():
    with pytest.raises(ValueError):
        tv_loss(torch.zeros(3, 4, 5))
