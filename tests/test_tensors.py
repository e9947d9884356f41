"""Conversions between file-side arrays and model tensors."""

import numpy as np
import pytest
import torch

from eyepurify.tensors import images_to_tensor, labels_to_tensor, one_hot, tensor_to_images


def test_one_hot_equals_torch_one_hot_and_rejects_unknown_labels():
    lab = torch.randint(0, 4, (3, 5, 7), generator=torch.Generator().manual_seed(0))
    ref = torch.nn.functional.one_hot(lab, 4).permute(0, 3, 1, 2).float()
    out = one_hot(lab)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 5, 7) and torch.equal(out, ref)
    assert one_hot(lab.to(torch.uint8)).equal(ref)
    assert one_hot(torch.zeros((0, 5, 7), dtype=torch.long)).shape == (0, 4, 5, 7)
    with pytest.raises(ValueError, match="0..3"):
        one_hot(torch.full((1, 2, 2), 4))


def test_images_round_trip():
    arr = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    x = images_to_tensor(arr)
    assert x.shape == (2, 3, 4, 6) and float(x.max()) <= 1.0
    assert np.array_equal(tensor_to_images(x), arr)
    assert labels_to_tensor([np.zeros((4, 6), np.uint8)]).dtype == torch.long
