from __future__ import annotations

import pytest
import torch

from eyepurify.losses.regions import Regions, class_maps, region_area, resize_maps


def _labels() -> torch.Tensor:
    return torch.tensor([[[0, 1, 2, 2], [0, 2, 3, 2], [1, 1, 2, 0]]])  # 1×3×4


def test_from_labels_union_and_background():
    r = Regions.from_labels(_labels())
    att = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, 0]]], dtype=torch.float32)
    assert r.attention.shape == (1, 1, 3, 4)
    assert torch.equal(r.attention[:, 0], att)
    assert torch.equal(r.background[:, 0], 1 - att)
    assert r.size == (3, 4)


def test_from_labels_per_class():
    r = Regions.from_labels(_labels(), per_class=True)
    assert r.attention.shape == (1, 2, 3, 4)
    assert torch.equal(r.attention[0, 0], (_labels()[0] == 2).float())
    assert torch.equal(r.attention[0, 1], (_labels()[0] == 3).float())
    assert torch.equal(r.background, 1 - r.attention.sum(1, keepdim=True))


def test_from_labels_rejects_float_and_wrong_rank():
    with pytest.raises(ValueError):
        Regions.from_labels(_labels().float())
    with pytest.raises(ValueError):
        Regions.from_labels(_labels()[0])


def test_regions_shape_checks():
    with pytest.raises(ValueError):
        Regions(torch.zeros(1, 1, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError):
        Regions(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 5))


def test_from_attention_soft():
    att = torch.tensor([[[[0.25, 1.0]]]])
    r = Regions.from_attention(att)
    assert torch.allclose(r.background, torch.tensor([[[[0.75, 0.0]]]]))


def test_class_maps_one_hot():
    m = class_maps(_labels(), (0, 1, 2, 3))
    assert torch.equal(m.sum(1), torch.ones(1, 3, 4))


def test_resize_area_gives_fractions():
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, :2, :1] = 1.0  # half of the top-left 2×2 cell
    r = resize_maps(m, (2, 2))
    assert torch.allclose(r, torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]]))
    # area averaging keeps the total area fraction for integer factors
    assert torch.isclose(r.mean(), m.mean())


def test_resize_same_size_is_identity_and_upsample_stays_in_range():
    m = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert resize_maps(m, (5, 7)) is m
    up = resize_maps(m, (10, 9))
    assert up.shape == (2, 3, 10, 9)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0


def test_resize_does_not_modify_input():
    m = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    before = m.clone()
    resize_maps(m, (3, 3))
    assert torch.equal(m, before)


def test_region_area_is_pixel_count_for_hard_maps():
    m = torch.zeros(1, 2, 3, 3)
    m[0, 0, 0, :] = 1.0
    m[0, 1, 1:, 1:] = 0.5
    assert torch.allclose(region_area(m), torch.tensor([[3.0, 4 * 0.25]]))
