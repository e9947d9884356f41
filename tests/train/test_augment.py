"""Content augmentation of purifier training batches (train/augment.py)."""

import pytest
import torch

from eyepurify.errors import EyepurifyError
from eyepurify.train.augment import augment_content, random_similarity, warp_pair
from eyepurify.train.purifier import PurifierTrainConfig


def _batch(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 24, 40, generator=g)
    lab = torch.zeros(n, 24, 40, dtype=torch.int64)
    lab[:, 8:16, 10:30] = 1
    lab[:, 10:14, 16:22] = 2
    return x, lab


def test_identity_warp_changes_nothing():
    x, lab = _batch()
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3)
    y, lab_y = warp_pair(x, lab, theta)
    assert torch.allclose(y, x, atol=1e-5) and torch.equal(lab_y, lab)


def test_a_shift_moves_image_and_labels_together():
    x, lab = _batch(1)
    x = lab[:, None].float().expand(1, 3, -1, -1) / 2  # the image draws the labels
    theta = torch.tensor([[[1.0, 0, 0.25], [0, 1.0, 0]]])  # sample 5 px to the right → content moves left
    y, lab_y = warp_pair(x, lab, theta)
    assert torch.equal((y[:, 0] * 2).round().long(), lab_y)
    assert torch.equal(lab_y[0, :, 5:35], lab[0, :, 10:40])


def test_augment_is_seeded_and_leaves_the_input_alone():
    x, lab = _batch()
    x0, lab0 = x.clone(), lab.clone()
    a = augment_content(x, lab, "strong", torch.Generator().manual_seed(3))
    b = augment_content(x, lab, "strong", torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(x, x0) and torch.equal(lab, lab0)
    assert not torch.equal(a[0], x) and a[0].min() >= 0 and a[0].max() <= 1
    assert set(a[1].unique().tolist()) <= {0, 1, 2}
    assert augment_content(x, lab, "none", torch.Generator())[0] is x


def test_similarity_stays_in_its_ranges():
    t = random_similarity(500, torch.Generator().manual_seed(1))
    scale = 1 / torch.linalg.det(t[:, :, :2]).sqrt()
    assert scale.min() >= 0.9 - 1e-6 and scale.max() <= 1.1 + 1e-6
    assert t[:, :, 2].abs().max() <= 0.06 + 1e-6


def test_unknown_augmentation_is_refused():
    with pytest.raises(EyepurifyError, match="content augmentation"):
        PurifierTrainConfig(content=("a",), style=("b",), content_augment="wild")
    with pytest.raises(ValueError):
        augment_content(*_batch(), "wild", torch.Generator())
