import json

import cv2
import numpy as np
import pytest
import torch

from eyepurify.cli import main
from eyepurify.data.render import render_batch, sample_params
from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.io import write_image
from eyepurify.models.export import save_model
from eyepurify.models.simgan import (
    NEAR_IDENTITY_THRESHOLD,
    Refiner,
    RefinerConfig,
    create_refiner,
    load_refiner,
    refine_arrays,
)
from eyepurify.train.simgan import HistoryBuffer, SimGANConfig, measure, train_simgan

SIZE = (24, 40)


@pytest.fixture(scope="module")
def domains():
    """(synthetic, real) uint8 N×24×40×1: renders, and other renders darkened with noise."""
    rng = np.random.default_rng(0)
    gray = np.stack([
        cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY)
        for s in render_batch([sample_params(rng) for _ in range(96)], SIZE, "indoor")
    ])[..., None]
    noisy = gray[48:].astype(np.float64) * 0.55 + np.random.default_rng(1).normal(0, 6, gray[48:].shape)
    return gray[:48], noisy.round().clip(0, 255).astype(np.uint8)


def tiny(**kw) -> SimGANConfig:
    base = dict(model="test_tiny", size=SIZE, steps=30, batch=8, lr=3e-3, pretrain_refiner_steps=15,
                pretrain_disc_steps=10, history_size=64, eval_count=16, seed=0)
    base.update(kw)
    return SimGANConfig(**base)


def test_refiner_moves_synthetic_toward_real_statistics(domains, tmp_path):
    synthetic, real = domains
    res = train_simgan(tiny(), synthetic, real, run_dir=tmp_path, progress=False)
    log = res.log
    # the real set is about 45 % darker: a refiner that learned anything closes most of the gap
    assert log["mean_gap_before"] > 40
    assert log["mean_gap_after"] < 0.5 * log["mean_gap_before"]
    assert log["w1_after"] < 0.5 * log["w1_before"]
    assert log["mean_abs_diff"] > 10 and log["near_identity"] is False and log["collapsed"] is False
    assert log["images"]["synthetic_eval"] == 9 and log["images"]["eval_is_train"] is False
    for name in ("refiner.safetensors", "config.json", "log.json", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert SimGANConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == tiny()
    assert json.loads((tmp_path / "log.json").read_text())["mean_abs_diff"] == pytest.approx(log["mean_abs_diff"])

    # save/load round trip: identical outputs
    loaded = load_refiner(tmp_path / "refiner.safetensors")
    imgs = list(synthetic[:5, :, :, 0])
    a, b = refine_arrays(res.refiner, imgs), refine_arrays(loaded, imgs)
    assert all(x.shape == SIZE and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_same_seed_same_run_other_seed_differs(domains):
    synthetic, real = domains
    cfg = tiny(steps=4, pretrain_refiner_steps=2, pretrain_disc_steps=2)
    r1 = train_simgan(cfg, synthetic, real, progress=False)
    r2 = train_simgan(cfg, synthetic, real, progress=False)
    r3 = train_simgan(tiny(steps=4, pretrain_refiner_steps=2, pretrain_disc_steps=2, seed=1), synthetic, real, progress=False)
    s1, s2, s3 = (r.refiner.state_dict() for r in (r1, r2, r3))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1.log["history"] == r2.log["history"] and r1.log["mean_abs_diff"] == r2.log["mean_abs_diff"]
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_history_buffer_fills_then_replaces_random_slots():
    rng = np.random.default_rng(0)
    buf = HistoryBuffer(5)
    assert len(buf) == 0 and buf.sample(3, rng).numel() == 0
    first = torch.arange(3, dtype=torch.float32).reshape(3, 1, 1, 1)
    buf.push(first, rng)
    first += 100  # the buffer holds copies, not the caller's tensor
    assert len(buf) == 3
    got = buf.sample(10, rng)  # at most what is stored, without replacement
    assert sorted(got.flatten().tolist()) == [0.0, 1.0, 2.0]
    buf.push(torch.full((4, 1, 1, 1), 7.0), rng)  # 2 fill the free slots, 2 overwrite random ones
    vals = buf.images.flatten().tolist()
    assert len(buf) == 5 and vals.count(7.0) == 4
    assert len({0.0, 1.0, 2.0} & set(vals)) == 1
    out = buf.sample(2, rng)
    out += 1000  # samples are copies too
    assert max(buf.images.flatten().tolist()) == 7.0
    empty = HistoryBuffer(0)
    empty.push(first, rng)
    assert len(empty) == 0


class _Identity(Refiner):
    def forward(self, x):
        return x


def test_identity_refiner_is_reported_as_near_identity(domains):
    synthetic, real = domains
    m = measure(_Identity(RefinerConfig(channels=1, filters=1, blocks=0)), None, synthetic[:8], real[:8])
    assert m["mean_abs_diff"] == 0.0 and m["near_identity"] is True and m["collapsed"] is False
    assert m["mean_gap_after"] == pytest.approx(m["mean_gap_before"])
    assert NEAR_IDENTITY_THRESHOLD == 1.0


class _White(Refiner):
    def forward(self, x):
        return torch.ones_like(x)


def test_constant_refiner_is_reported_as_collapsed(domains):
    synthetic, real = domains
    m = measure(_White(RefinerConfig(channels=1, filters=1, blocks=0)), None, synthetic[:8], real[:8])
    assert m["collapsed"] is True and m["near_identity"] is False
    assert m["refined_mean"] == 255.0
    assert m["mean_abs_diff"] == pytest.approx(255.0 - synthetic[:8].mean())


def test_refine_arrays_shapes_and_errors():
    torch.manual_seed(0)
    r1, r3 = create_refiner("test_tiny", 1), create_refiner("test_tiny", 3)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(10, 12), (10, 12, 1), (7, 9)]]
    out = refine_arrays(r1, imgs, batch=1)
    assert [o.shape for o in out] == [(10, 12), (10, 12, 1), (7, 9)]
    np.testing.assert_array_equal(out[0], out[1][..., 0] if np.array_equal(imgs[0], imgs[1][..., 0]) else out[0])
    assert refine_arrays(r3, [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)])[0].shape == (6, 8, 3)
    assert r1.training  # mode restored
    with pytest.raises(EyepurifyError, match="H×W×3"):
        refine_arrays(r3, [imgs[0]])
    with pytest.raises(EyepurifyError, match="uint8"):
        refine_arrays(r1, [imgs[0].astype(np.float32)])


def test_bad_inputs_and_files(domains, tmp_path):
    synthetic, real = domains
    with pytest.raises(EyepurifyError, match="expected uint8"):
        train_simgan(tiny(), synthetic[:, :20], real, progress=False)
    with pytest.raises(ValueError):
        SimGANConfig(history_fraction=2.0)
    with pytest.raises(WeightsError, match="not found"):
        load_refiner(tmp_path / "missing.safetensors")
    save_model(tmp_path / "other.safetensors", torch.nn.Linear(2, 2), {"kind": "something-else"})
    with pytest.raises(WeightsError, match="not a SimGAN refiner"):
        load_refiner(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(WeightsError):
        load_refiner(tmp_path / "junk.safetensors")


def test_cli_quick_run_and_errors(domains, tmp_path, capsys):
    synthetic, real = domains
    for name, arr in (("syn", synthetic), ("real", real)):
        for i, im in enumerate(arr[:20]):
            write_image(tmp_path / name / f"{i:03d}.png", np.repeat(im, 3, axis=2))
    (tmp_path / "real" / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    rc = main(["train-simgan", "--synthetic", str(tmp_path / "syn"), "--real", str(tmp_path / "real"),
               "--out", str(out), "--quick", "--size", "24x40", "--steps", "5", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "grey levels" in captured.out and "broken.png" in captured.err
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["size"] == [24, 40] and log["config"]["model"] == "test_tiny"
    assert log["images"]["real_train"] + log["images"]["real_eval"] == 20
    assert load_refiner(out / "refiner.safetensors").config.channels == 1
    args = ["train-simgan", "--synthetic", str(tmp_path / "syn"), "--real", str(tmp_path / "real"),
            "--out", str(out), "--quick", "--size", "24x40", "--no-progress"]
    assert main([*args, "--steps", "5"]) == 2  # the folder holds a run: --resume or another --out
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--steps", "7", "--resume"]) == 0  # a longer run continues
    assert json.loads((out / "log.json").read_text())["config"]["steps"] == 7
    (tmp_path / "empty").mkdir()
    assert main(["train-simgan", "--synthetic", str(tmp_path / "nope"), "--real", str(tmp_path / "real"),
                 "--out", str(out), "--quick"]) == 2
    assert main(["train-simgan", "--synthetic", str(tmp_path / "empty"), "--real", str(tmp_path / "real"),
                 "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("eyepurify: error:") == 2 and all(len(line) < 400 for line in err.splitlines())


def _resumable(steps: int, **kw) -> SimGANConfig:  # type: ignore[no-untyped-def]
    return tiny(steps=steps, pretrain_refiner_steps=2, pretrain_disc_steps=2, d_steps_per_g=1.5,
                history_size=8, checkpoint_every=3, **kw)


def _same_run(a, b, ra, rb) -> None:  # type: ignore[no-untyped-def]
    sa, sb = ra.refiner.state_dict(), rb.refiner.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ra.log["history"] == rb.log["history"] and ra.log["pretrained"] == rb.log["pretrained"]
    assert ra.log["mean_abs_diff"] == rb.log["mean_abs_diff"]
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    assert (a / "refiner.safetensors").read_bytes() == (b / "refiner.safetensors").read_bytes()


def test_resume_is_bit_exact(domains, tmp_path):
    synthetic, real = domains
    a, b = tmp_path / "a", tmp_path / "b"
    straight = train_simgan(_resumable(4), synthetic, real, run_dir=a, progress=False)
    train_simgan(_resumable(2), synthetic, real, run_dir=b, progress=False)
    torch.manual_seed(123)  # resuming does not depend on (or touch) the global RNG
    resumed = train_simgan(_resumable(4), synthetic, real, run_dir=b, progress=False, resume=True)
    _same_run(a, b, straight, resumed)
    steps = [json.loads(line)["step"] for line in (b / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    with pytest.raises(EyepurifyError, match="--resume"):
        train_simgan(_resumable(4), synthetic, real, run_dir=b, progress=False)
    with pytest.raises(EyepurifyError, match="different settings.*seed"):
        train_simgan(_resumable(6, seed=1), synthetic, real, run_dir=b, progress=False, resume=True)
    with pytest.raises(EyepurifyError, match="other images"):
        train_simgan(_resumable(6), synthetic[1:], real, run_dir=b, progress=False, resume=True)
    with pytest.raises(EyepurifyError, match="checkpoint not found"):
        train_simgan(_resumable(6), synthetic, real, run_dir=tmp_path / "c", progress=False, resume=True)


def test_ctrl_c_keeps_a_checkpoint_and_resume_matches(domains, tmp_path, monkeypatch):
    import os
    import signal

    import eyepurify.train.simgan as ts
    from eyepurify.errors import Interrupted

    synthetic, real = domains
    a, b = tmp_path / "a", tmp_path / "b"
    straight = train_simgan(_resumable(4), synthetic, real, run_dir=a, progress=False)
    real_l1, calls = ts.F.l1_loss, {"n": 0}

    def l1(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # the first adversarial step (steps 1-2 pre-train the refiner)
            os.kill(os.getpid(), signal.SIGINT)
        return real_l1(*args, **kw)

    monkeypatch.setattr(ts.F, "l1_loss", l1)
    with pytest.raises(Interrupted, match="interrupted at step 5 of 8") as e:
        train_simgan(_resumable(4), synthetic, real, run_dir=b, progress=False)
    assert e.value.exit_code == 130
    assert (b / "checkpoint.safetensors").exists() and not (b / "refiner.safetensors").exists()
    monkeypatch.undo()
    resumed = train_simgan(_resumable(4), synthetic, real, run_dir=b, progress=False, resume=True)
    _same_run(a, b, straight, resumed)
