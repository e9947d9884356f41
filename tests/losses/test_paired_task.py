import math

import pytest
import torch

from eyepurify.losses.paired import feature_loss, pixel_loss
from eyepurify.losses.style import softmax_features
from eyepurify.losses.task import gaze_consistency, gaze_input, segmentation_consistency


def _g(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_pixel_loss_hand_value_and_shape_check():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.25)
    assert pixel_loss(a, b).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one shape"):
        pixel_loss(a, b[..., :1])


def test_feature_loss_sums_the_content_loss_over_layers():
    fo = {"a": torch.ones(1, 2, 2, 2), "b": torch.zeros(1, 1, 1, 1)}
    ft = {"a": torch.zeros(1, 2, 2, 2), "b": torch.ones(1, 1, 1, 1)}
    # a: 8 / (2·2·4) = 0.5; b: 1 / (2·1·1) = 0.5
    assert feature_loss(fo, ft, ("a", "b")).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        feature_loss(fo, ft, ())


def test_task_terms_hand_values():
    logits = torch.tensor([[[[10.0]], [[-10.0]]]])  # class 0 certain
    assert segmentation_consistency(logits, torch.zeros(1, 1, 1, dtype=torch.long)).item() == pytest.approx(0, abs=1e-6)
    assert segmentation_consistency(logits, torch.ones(1, 1, 1, dtype=torch.long)).item() == pytest.approx(20, abs=1e-4)
    v = torch.tensor([[0.0, 0.0, -1.0]])
    w = torch.tensor([[0.0, -math.sin(0.1), -math.cos(0.1)]])
    assert gaze_consistency(v, v).item() == pytest.approx(0, abs=1e-7)
    assert gaze_consistency(v, w).item() == pytest.approx(1 - math.cos(0.1), rel=1e-5)
    with pytest.raises(ValueError):
        gaze_consistency(v, v[:, :2])


def test_gaze_input_is_luma_at_the_size():
    x = torch.zeros(1, 3, 4, 6)
    x[:, 1] = 1.0  # pure green
    g = gaze_input(x, (4, 6))
    assert g.shape == (1, 1, 4, 6) and torch.allclose(g, torch.full_like(g, 0.587))
    assert gaze_input(_g(2, 3, 36, 60).float(), (35, 55)).shape == (2, 1, 35, 55)


def test_gradients_of_paired_and_task_terms():
    x, t = _g(1, 3, 4, 5, seed=1).requires_grad_(), _g(1, 3, 4, 5, seed=2)
    assert torch.autograd.gradcheck(lambda a: pixel_loss(a, t + 0.5), (x,))  # away from the kink of |·|
    f = _g(1, 2, 3, 3, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: feature_loss({"l": a}, {"l": t[:, :2, :3, :3]}, ("l",)), (f,))
    v = _g(3, 3, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: gaze_consistency(a, _g(3, 3, seed=5)), (v,))
    logits = _g(1, 4, 2, 3, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: segmentation_consistency(a, torch.tensor([[[0, 1, 2], [3, 0, 1]]])), (logits,))


def test_softmax_features_average_one_and_raise_entropy():
    f = torch.zeros(2, 3, 4, 4)
    f[0, 0, 0, 0] = 20.0  # one peaky activation
    s = softmax_features(f)
    assert s.shape == f.shape and torch.allclose(s.mean(dim=(1, 2, 3)), torch.ones(2))
    assert torch.allclose(s[1], torch.ones(3, 4, 4))  # flat features stay flat
    assert torch.autograd.gradcheck(lambda a: softmax_features(a, 2.0), (_g(1, 2, 2, 2, seed=7).requires_grad_(),))
    with pytest.raises(ValueError):
        softmax_features(f, 0.0)
