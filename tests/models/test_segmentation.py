import pytest
import torch

from eyepurify.models.segmentation import (
    PRESETS,
    SegmentationNet,
    SegmentationNetConfig,
    count_parameters,
    create_segmentation_net,
)


@pytest.mark.parametrize("hw", [(72, 120), (36, 60), (35, 55), (17, 23), (1, 1), (3, 130)])
def test_logits_have_input_size_for_any_size(hw):
    torch.manual_seed(0)
    net = create_segmentation_net("test_tiny").eval()
    y = net(torch.rand(2, 3, *hw))
    assert y.shape == (2, 4, *hw)
    assert torch.isfinite(y).all()


def test_default_preset_is_small_and_deeper_than_tiny():
    n = count_parameters(create_segmentation_net())
    assert 100_000 <= n <= 500_000
    assert count_parameters(create_segmentation_net("test_tiny")) < 20_000
    assert PRESETS["default"].depth == 3


def test_batch_items_are_independent_in_eval_mode():
    # Padding and cropping are per image: a 2-image batch equals the images run one by one.
    torch.manual_seed(0)
    net = create_segmentation_net("test_tiny").eval()
    x = torch.rand(2, 3, 13, 21)
    both = net(x)
    torch.testing.assert_close(both[1:], net(x[1:]))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = create_segmentation_net("test_tiny")
    loss = torch.nn.functional.cross_entropy(net(torch.rand(2, 3, 10, 14)), torch.randint(0, 4, (2, 10, 14)))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_input_and_config():
    net = create_segmentation_net("test_tiny")
    with pytest.raises(ValueError, match="N×3×H×W"):
        net(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="unknown"):
        create_segmentation_net("huge")
    with pytest.raises(ValueError):
        SegmentationNet(SegmentationNetConfig(width=0))


def test_can_overfit_one_image():
    # The network can represent a label map: a few steps on one image fit it closely.
    torch.manual_seed(0)
    net = create_segmentation_net("test_tiny")
    x = torch.rand(1, 3, 12, 16)
    y = torch.zeros(1, 12, 16, dtype=torch.long)
    y[:, 3:9, 4:12] = 1
    y[:, 5:7, 6:10] = 3
    x[0, 0] = y[0].float() / 3  # the label is visible in the red channel
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert (net(x).argmax(1) == y).float().mean() > 0.95


def test_predict_labels_runs_resizes_logits_and_takes_argmax():
    import numpy as np
    import torch.nn.functional as F

    from eyepurify.imaging import resize_images
    from eyepurify.models.segmentation import predict_labels
    from eyepurify.tensors import images_to_tensor

    torch.manual_seed(0)
    net = create_segmentation_net("test_tiny").eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 20, 30, 3), dtype=np.uint8)
    direct = predict_labels(net, images, batch=2)
    assert len(direct) == 5 and direct[0].shape == (20, 30) and direct[0].dtype == np.uint8
    with torch.no_grad():
        want = net(images_to_tensor(images)).argmax(1).numpy()
    assert np.array_equal(np.stack(direct), want)
    # run at 10x15, logits back to the images' size
    small = predict_labels(net, list(images), size=(10, 15))
    with torch.no_grad():
        logits = net(images_to_tensor(np.stack(resize_images(images, (10, 15)))))
        want = F.interpolate(logits, size=(20, 30), mode="bilinear", align_corners=False).argmax(1).numpy()
    assert np.array_equal(np.stack(small), want)
    out = predict_labels(net, images, out_shape=(40, 60))
    with torch.no_grad():
        up = F.interpolate(net(images_to_tensor(images)), size=(40, 60), mode="bilinear", align_corners=False)
    assert np.array_equal(np.stack(out), up.argmax(1).numpy())
    assert predict_labels(net, []) == []
