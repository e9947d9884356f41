import pytest
import torch

from eyepurify.models.attention import AttentionNet, attention_bce, attention_pair
from eyepurify.models.transformer import PRESETS, create_transform_net


@pytest.mark.parametrize("hw", [(36, 60), (35, 55), (17, 23), (4, 5)])
def test_output_has_input_size_and_range(hw):
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    x = torch.rand(2, 3, *hw)
    m = torch.zeros(2, 4, *hw)
    m[:, 0] = 1
    y = net(x, m)
    assert y.shape == (2, 3, *hw)
    assert y.min() >= 0 and y.max() <= 1


def test_mask_is_required_and_checked():
    net = create_transform_net("test_tiny")
    with pytest.raises(ValueError, match="mask"):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8))


def test_johnson_preset_takes_rgb_only():
    net = create_transform_net("test_tiny_johnson").eval()
    assert net(torch.rand(1, 3, 12, 20)).shape == (1, 3, 12, 20)
    assert PRESETS["johnson"].n_res == 5 and PRESETS["johnson"].mask_channels == 0
    assert PRESETS["eyepurify"].n_res == 4


def test_mask_changes_output_and_gradients_flow():
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    m1 = torch.zeros(1, 4, 16, 16)
    m1[:, 0] = 1
    m2 = torch.zeros(1, 4, 16, 16)
    m2[:, 2] = 1
    y1, y2 = net(x, m1), net(x, m2)
    assert not torch.allclose(y1, y2)
    y1.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_input_not_modified():
    net = create_transform_net("test_tiny").eval()
    x = torch.rand(1, 3, 9, 9)
    m = torch.rand(1, 4, 9, 9)
    x0, m0 = x.clone(), m.clone()
    net(x, m)
    assert torch.equal(x, x0) and torch.equal(m, m0)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown network"):
        create_transform_net("nope")


def test_attention_sums_to_one_and_bce():
    torch.manual_seed(0)
    att = AttentionNet(mask_channels=4, width=4)
    x, m = torch.rand(2, 3, 10, 14), torch.rand(2, 4, 10, 14)
    a = att(x, m)
    assert a.shape == (2, 1, 10, 14) and (a > 0).all() and (a < 1).all()
    pair = attention_pair(a)
    torch.testing.assert_close(pair.sum(1), torch.ones(2, 10, 14))
    region = (m[:, 2:].sum(1, keepdim=True) > 0.8).float()
    loss = attention_bce(att.logits(x, m), region)
    loss.backward()
    assert torch.isfinite(loss) and att.head.weight.grad is not None


def test_attention_learns_region():
    torch.manual_seed(0)
    att = AttentionNet(mask_channels=4, width=4)
    opt = torch.optim.Adam(att.parameters(), 1e-2)
    m = torch.zeros(4, 4, 12, 12)
    m[:, 0] = 1
    m[:, 0, 4:8, 4:8] = 0
    m[:, 2, 4:8, 4:8] = 1
    region = m[:, 2:].sum(1, keepdim=True)
    x = torch.rand(4, 3, 12, 12)
    for _ in range(300):
        opt.zero_grad()
        loss = attention_bce(att.logits(x, m), region)
        loss.backward()
        opt.step()
    a = att(x, m)
    assert a[region.bool()].mean() > 0.8 and a[~region.bool()].mean() < 0.2


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_convolution_keeps_size_and_has_no_checkerboard(mode):
    from eyepurify.bench.look import period2_share
    from eyepurify.models.transformer import TransformNet, TransformNetConfig

    x = torch.linspace(0, 1, 40 * 64).reshape(1, 1, 40, 64).expand(1, 3, 40, 64).contiguous()
    shares = {}
    for up in ("deconv", mode):
        torch.manual_seed(3)
        net = TransformNet(TransformNetConfig(width=8, n_res=1, dropout=0.0, mask_channels=0, upsample=up)).eval()
        y = net(x)
        assert y.shape == x.shape
        shares[up] = period2_share(y[0].permute(1, 2, 0).detach().numpy() * 255)
    # random transposed convolutions print the period-2 grid; resize-convolution does not
    assert shares[mode] < 0.25 * shares["deconv"]


def test_upsample_field_defaults_to_the_old_layout_and_is_checked():
    from eyepurify.models.transformer import PRESETS, TransformNetConfig

    assert TransformNetConfig().upsample == "deconv" and PRESETS["small"].upsample == "deconv"
    assert PRESETS["v2"].upsample == "nearest"
    with pytest.raises(ValueError, match="upsample"):
        TransformNetConfig(upsample="pixelshuffle")


def test_input_skip_reads_the_input_and_keeps_old_keys():
    from eyepurify.models.transformer import TransformNet, TransformNetConfig

    old = TransformNet(TransformNetConfig(width=4, n_res=1))
    assert "decoder.6.1.weight" in old.state_dict() and old.head is None
    net = TransformNet(TransformNetConfig(width=4, n_res=1, mask_channels=0, upsample="nearest", input_skip=True)).eval()
    assert net.head is not None and net.head[1].in_channels == 4 + 3
    x = torch.rand(1, 3, 20, 28, requires_grad=True)
    net(x).sum().backward()
    assert net(x).shape == x.shape and x.grad is not None and x.grad.abs().sum() > 0
