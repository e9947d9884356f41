import pytest
import torch

from eyepurify.models.simgan import (
    REAL,
    REFINED,
    DiscriminatorConfig,
    LocalDiscriminator,
    Refiner,
    RefinerConfig,
    count_parameters,
    create_discriminator,
    create_refiner,
)


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


@pytest.mark.parametrize("channels", [1, 3])
def test_default_parameter_counts_match_the_papers_architecture(channels):
    # Refiner: conv3×3 C→64, 4 ResNet blocks of two conv3×3 64→64, conv1×1 64→C.
    f = 64
    want_r = _conv(channels, f, 3) + 4 * 2 * _conv(f, f, 3) + _conv(f, channels, 1)
    # Discriminator: conv3×3 s2 96, conv3×3 s2 64, maxpool, conv3×3 32, conv1×1 32, conv1×1 2.
    want_d = _conv(channels, 96, 3) + _conv(96, 64, 3) + _conv(64, 32, 3) + _conv(32, 32, 1) + _conv(32, 2, 1)
    assert count_parameters(create_refiner("default", channels)) == want_r
    assert count_parameters(create_discriminator("default", channels)) == want_d
    if channels == 1:
        assert (want_r, want_d) == (296_129, 75_906)  # the numbers quoted in the module docstring
    r = create_refiner("default", channels)
    assert (r.config.blocks, r.config.filters) == (4, 64)
    t = create_refiner("test_tiny", channels)
    assert (t.config.blocks, t.config.filters) == (1, 8)


@pytest.mark.parametrize("hw", [(36, 60), (35, 55), (9, 13)])
@pytest.mark.parametrize("channels", [1, 3])
def test_refiner_keeps_shape_and_range(hw, channels):
    torch.manual_seed(0)
    r = create_refiner("test_tiny", channels)
    x = torch.rand(2, channels, *hw)
    y = r(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    # extreme inputs stay in range too
    y = r(torch.cat([torch.zeros(1, channels, *hw), torch.ones(1, channels, *hw)]) * 1e3)
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize(("hw", "out"), [((36, 60), (9, 15)), ((35, 55), (9, 14)), ((8, 8), (2, 2))])
def test_discriminator_gives_per_patch_logits(hw, out):
    torch.manual_seed(0)
    d = create_discriminator("default", 1)
    y = d(torch.rand(3, 1, *hw))
    assert y.shape == (3, 2, *out)
    assert {REAL, REFINED} == {0, 1}


def test_refiner_is_local():
    # No striding or pooling: one input pixel affects outputs only within the receptive field
    # (test_tiny: head conv + 2 convs of one block = 3 layers of 3×3 → radius 3).
    torch.manual_seed(0)
    r = create_refiner("test_tiny", 1).eval()
    x = torch.rand(1, 1, 21, 21)
    x2 = x.clone()
    x2[0, 0, 10, 10] += 0.5
    changed = (r(x2) - r(x)).abs()[0, 0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.any()
    assert rows.min() >= 7 and rows.max() <= 13 and cols.min() >= 7 and cols.max() <= 13


def test_same_seed_same_networks_and_outputs():
    def build(seed):
        torch.manual_seed(seed)
        return create_refiner("default", 1), create_discriminator("default", 1)

    (r1, d1), (r2, d2), (r3, _) = build(5), build(5), build(6)
    x = torch.rand(2, 1, 12, 20)
    assert torch.equal(r1(x), r2(x)) and torch.equal(d1(x), d2(x))
    assert not torch.equal(r1(x), r3(x))


def test_configs_round_trip_and_reject_bad_values():
    c = RefinerConfig(channels=3, filters=16, blocks=2)
    assert RefinerConfig.from_dict(c.to_dict()) == c
    d = DiscriminatorConfig(channels=3, widths=(4, 5, 6, 7))
    assert DiscriminatorConfig.from_dict(d.to_dict()) == d
    with pytest.raises(ValueError):
        RefinerConfig(channels=2)
    with pytest.raises(ValueError, match="unknown"):
        RefinerConfig.from_dict({"channels": 1, "depth": 3})
    with pytest.raises(ValueError, match="unknown SimGAN network"):
        create_refiner("huge")
    with pytest.raises(ValueError, match="N×1×H×W"):
        Refiner()(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="N×3×H×W"):
        LocalDiscriminator(DiscriminatorConfig(channels=3))(torch.rand(1, 1, 8, 8))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    r, d = create_refiner("test_tiny"), create_discriminator("test_tiny")
    x = torch.rand(2, 1, 16, 24)
    d(r(x)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*r.parameters(), *d.parameters()])
