import json
import os
import signal

import numpy as np
import pytest
import torch

from eyepurify.cli import main
from eyepurify.data.base import EyeDataset
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.models.export import read_model_file as load_model
from eyepurify.sample import EyeSample
from eyepurify.tensors import photometric_augment
from eyepurify.train.checkpoint import load_checkpoint
from eyepurify.train.segmenter import (
    SegmenterConfig,
    create_loader,
    create_model,
    load_labelled_arrays,
    split_indices,
    train,
)

from ..synthetic_eyes import SyntheticEyes, write_eye_folder

SMALL = {"steps": 8, "batch": 4, "size": (24, 40), "model": "test_tiny", "val_fraction": 0.25,
         "val_every": 4, "checkpoint_every": 3, "lr": 1e-2}


def test_config_json_round_trip_and_validation():
    c = SegmenterConfig(data=("a", "b"), **SMALL)
    d = json.loads(json.dumps(c.to_dict()))
    assert SegmenterConfig.from_dict(d) == c
    with pytest.raises(ValueError, match="augment"):
        SegmenterConfig(augment="wild")
    with pytest.raises(ValueError, match="unknown"):
        SegmenterConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError):
        SegmenterConfig(val_fraction=1.0)


def test_photometric_augment_is_seeded_pure_and_in_range():
    x = torch.rand(4, 3, 10, 12)
    before = x.clone()
    a = photometric_augment(x, torch.Generator().manual_seed(1))
    b = photometric_augment(x, torch.Generator().manual_seed(1))
    c = photometric_augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(x, before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.02  # it really changes the light


def test_batches_are_a_function_of_the_step_and_cover_each_epoch():
    ds = SyntheticEyes(10, h=12, w=20)
    imgs, labs, _, _ = load_labelled_arrays([ds], (12, 20), progress=False)
    loader = create_loader(imgs, labs, batch=4, seed=3, augment="none")
    seen = np.concatenate([loader.indices(s) for s in range(5)])  # 20 = two epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    x, y = loader(1)
    x2, y2 = create_loader(imgs, labs, batch=4, seed=3, augment="none")(1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    idx = loader.indices(1)
    assert torch.equal(y, torch.from_numpy(labs[idx]).long())
    assert torch.equal(x, torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2).float() / 255)
    strong = create_loader(imgs, labs, batch=4, seed=3, augment="strong")
    xs, ys = strong(1)
    for i, j in enumerate(idx):
        lab = torch.from_numpy(labs[j]).long()
        assert torch.equal(ys[i], lab) or torch.equal(ys[i], lab.flip(-1))
    assert not torch.equal(xs, x)


def test_split_is_seeded_and_disjoint():
    tr, va = split_indices(20, 0.25, seed=1)
    assert len(va) == 5 and len(tr) == 15 and not set(tr) & set(va)
    assert np.array_equal(va, split_indices(20, 0.25, seed=1)[1])
    assert len(split_indices(1, 0.5, 0)[1]) == 0 and len(split_indices(3, 0.01, 0)[1]) == 1


class _WithBadSample(SyntheticEyes):
    def __getitem__(self, index: int) -> EyeSample:
        if index == 2:
            raise DataError(f"eye{index}.png", "cannot decode", "re-export it")
        return super().__getitem__(index)


def test_load_labelled_resizes_and_skips_unlabelled_and_bad():
    ds = _WithBadSample(9, h=20, w=30, unlabelled_every=4)  # 3 and 7 have no labels
    imgs, labs, bad, unlabelled = load_labelled_arrays([ds], (12, 16), progress=False)
    assert imgs.shape == (6, 12, 16, 3) and labs.shape == (6, 12, 16) and imgs.dtype == np.uint8
    assert unlabelled == 2 and len(bad) == 1 and "eye2.png" in bad[0].path
    assert set(np.unique(labs)) <= {0, 1, 2, 3}  # nearest interpolation keeps labels


def test_create_model_is_seeded_without_touching_global_rng():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, b = create_model("test_tiny", 4), create_model("test_tiny", 4)
    assert torch.equal(torch.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_train_writes_run_and_learns(tmp_path):
    cfg = SegmenterConfig(**{**SMALL, "steps": 60, "augment": "none", "val_every": 60})
    res = train(cfg, tmp_path / "run", datasets=[SyntheticEyes(16)], progress=False)
    run = tmp_path / "run"
    assert res.step == 60 and not res.interrupted
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    assert SegmenterConfig.from_dict(load_checkpoint(run / "checkpoint.safetensors").config) == cfg
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_samples"] == 12 and metrics["val_samples"] == 4
    losses = [r["loss"] for r in res.history]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    assert 0.4 < res.val_miou <= 1.0
    state, meta = load_model(run / "model.safetensors")
    assert meta["kind"] == "segmentation" and meta["size"] == [24, 40] and meta["step"] == 60
    with pytest.raises(EyepurifyError, match="--resume"):
        train(cfg, run, datasets=[SyntheticEyes(16)], progress=False)


def _weights(path):
    return load_model(path)[0]


def test_interrupt_and_resume_is_bit_exact(tmp_path):
    cfg = SegmenterConfig(**SMALL)
    data = [SyntheticEyes(12)]
    train(cfg, tmp_path / "straight", datasets=data, progress=False)

    def interrupt(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    torch.manual_seed(99)
    res = train(cfg, tmp_path / "resumed", datasets=data, progress=False, on_step=interrupt)
    assert res.interrupted and res.step == 5
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors").step == 5
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    # a run folder from before the shared loop named its checkpoint last.safetensors
    (tmp_path / "resumed" / "checkpoint.safetensors").rename(tmp_path / "resumed" / "last.safetensors")
    torch.manual_seed(7)  # resume must not depend on the global RNG at start
    res = train(cfg, tmp_path / "resumed", resume=True, datasets=data, progress=False)
    assert res.step == 8 and not res.interrupted
    a, b = _weights(tmp_path / "straight" / "model.safetensors"), _weights(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())["history"]
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())["history"]
    assert straight == resumed
    assert load_checkpoint(tmp_path / "resumed" / "last.safetensors").step == 8
    assert not (tmp_path / "resumed" / "checkpoint.safetensors").exists()
    logged = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "time"} for r in logged] == straight  # the log adds seconds

    with pytest.raises(EyepurifyError, match="different settings.*seed"):
        train(SegmenterConfig(**{**SMALL, "seed": 1, "steps": 10}), tmp_path / "resumed", resume=True, datasets=data)
    with pytest.raises(Exception, match="checkpoint not found"):
        train(cfg, tmp_path / "new", resume=True, datasets=data)


def test_no_labelled_samples_is_a_clear_error(tmp_path):
    class NoLabels(EyeDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return EyeSample(image=np.zeros((8, 8, 3), np.uint8))

    with pytest.raises(DataError, match="no labelled samples"):
        train(SegmenterConfig(**SMALL), tmp_path / "r", datasets=[NoLabels()])


def test_cli_trains_on_an_image_mask_folder(tmp_path, capsys):
    data = write_eye_folder(tmp_path / "eyes", 8)
    run = tmp_path / "run"
    argv = ["train-segmenter", str(data), "--out", str(run), "--steps", "4", "--batch", "4",
            "--size", "24x40", "--seed", "0", "--model", "test_tiny", "--augment", "strong",
            "--val-every", "2", "--no-progress"]
    assert main(argv) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    assert (run / "model.safetensors").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"] == [str(data)] and cfg["size"] == [24, 40] and cfg["augment"] == "strong"
    assert main([*argv[:5], "8", *argv[6:], "--resume"]) == 0  # longer run continues
    assert load_checkpoint(run / "checkpoint.safetensors").step == 8
    with pytest.raises(SystemExit):
        main(["train-segmenter", str(data), "--out", str(tmp_path / "x"), "--size", "7"])
    assert "HxW" in capsys.readouterr().err
    assert main(["train-segmenter", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    assert "missing" in capsys.readouterr().err
