import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from eyepurify.errors import WeightsError
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.train.checkpoint import (
    StopOnSignal,
    load_checkpoint,
    read_checkpoint_meta,
    restore,
    save_checkpoint,
)


def _trained(steps=3, seed=0):
    torch.manual_seed(seed)
    net = create_segmentation_net("test_tiny")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(steps):
        loss = net(torch.rand(2, 3, 8, 12)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, opt


def test_round_trip_restores_model_optimizer_rng_and_metadata(tmp_path):
    net, opt = _trained()
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    g = torch.Generator().manual_seed(8)
    ng = np.random.default_rng(9)
    cfg = {"size": (8, 12), "lr": 0.01, "name": "x", "nested": {"a": [1, 2]}}
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, step=3, optimizer=opt, config=cfg, extra={"history": [{"loss": 1.5}]},
                    generators={"g": g, "ng": ng})
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=g), ng.random(3))

    ckpt = load_checkpoint(path)
    assert ckpt.step == 3 and ckpt.config == cfg and ckpt.config["size"] == (8, 12)
    assert ckpt.extra == {"history": [{"loss": 1.5}]}
    net2, opt2 = _trained(steps=1, seed=1)
    g2, ng2 = torch.Generator(), np.random.default_rng(0)
    restore(ckpt, net2, opt2, generators={"g": g2, "ng": ng2})
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    assert s2["param_groups"][0]["betas"] == (0.8, 0.95)
    for i in s1["state"]:
        for k in s1["state"][i]:
            assert torch.equal(torch.as_tensor(s1["state"][i][k]), torch.as_tensor(s2["state"][i][k]))
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=g2), ng2.random(3))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and torch.equal(got[3], expected[3]) and np.array_equal(got[4], expected[4])


def test_file_is_safetensors_with_json_header_and_no_pickle(tmp_path):
    net, opt = _trained(1)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, step=1, optimizer=opt, config={"seed": 3})
    raw = path.read_bytes()
    assert b"\x80\x04" not in raw[:16]  # not a pickle stream
    meta = read_checkpoint_meta(path)
    assert meta["format"] == "eyepurify-checkpoint" and meta["config"] == {"seed": 3}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_save_is_atomic_when_it_fails(tmp_path):
    net, _ = _trained(1)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, step=1)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, net, step=2, config={"bad": object()})
    assert path.read_bytes() == before


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="nope.safetensors: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(WeightsError, match="bad.safetensors: not a readable safetensors file"):
        load_checkpoint(bad)
    net, opt = _trained(1)
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, net, step=1, optimizer=opt)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-50])
    with pytest.raises(WeightsError, match="cut.safetensors"):
        load_checkpoint(cut)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="no eyepurify metadata"):
        load_checkpoint(other)


def test_restore_rejects_other_architecture(tmp_path):
    net, opt = _trained(1)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, step=1, optimizer=opt)
    with pytest.raises(WeightsError, match="do not fit"):
        restore(load_checkpoint(path), create_segmentation_net("default"))
    save_checkpoint(path, net, step=1)
    with pytest.raises(WeightsError, match="no optimizer state"):
        restore(load_checkpoint(path), net, opt)


def test_resume_is_bit_exact(tmp_path: Path):
    def run(start_ckpt: Path | None, steps: int, save_to: Path | None):
        torch.manual_seed(0)
        net = create_segmentation_net("test_tiny")
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        done = 0
        if start_ckpt is not None:
            c = load_checkpoint(start_ckpt)
            restore(c, net, opt)
            done = c.step
        for _ in range(steps):
            x = torch.rand(2, 3, 9, 13)  # global RNG: must be restored too
            y = torch.randint(0, 4, (2, 9, 13))
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
        if save_to is not None:
            save_checkpoint(save_to, net, step=done, optimizer=opt)
        return net

    straight = run(None, 6, None)
    ck = tmp_path / "half.safetensors"
    run(None, 3, ck)
    torch.manual_seed(123)  # disturb the global RNG: restore must undo it
    resumed = run(ck, 3, None)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_stop_on_signal_sets_flag_and_restores_handler():
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested  # no KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
