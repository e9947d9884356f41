import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from eyepurify.cli import main
from eyepurify.errors import EyepurifyError
from eyepurify.purify import Purifier
from eyepurify.train.purifier import PurifierTrainConfig, train_purifier


def _folder(root, n, seed):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = 24, 36
        lab = np.zeros((h, w), np.uint8)
        cy, cx = rng.integers(9, 15), rng.integers(12, 24)
        lab[4:20, 3:33] = 1
        yy, xx = np.mgrid[:h, :w]
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        lab[(r2 < 30) & (lab == 1)] = 2
        lab[(r2 < 8) & (lab == 2)] = 3
        img = np.stack([np.choose(lab, [180, 230, 90, 20]).astype(np.uint8)] * 3, -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray(lab).save(root / "masks" / f"{i}.png")
    return root


@pytest.fixture
def data(tmp_path):
    return _folder(tmp_path / "content", 6, 0), _folder(tmp_path / "style", 2, 1)


def _cfg(data, **kw):
    c, s = data
    base = dict(content=(str(c),), style=(str(s),), net="test_tiny", backbone="test_tiny", size=(16, 24),
                batch=2, steps=4, val_every=2, sample_every=2, checkpoint_every=2)
    base.update(kw)
    return PurifierTrainConfig(**base)


@pytest.mark.parametrize("method", ["ours", "johnson"])
def test_train_writes_run_and_model_that_purifies(data, tmp_path, method):
    run = tmp_path / f"run_{method}"
    model = train_purifier(_cfg(data, method=method), run, progress=False)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(np.isfinite(r["total"]) for r in log) and "val" in log[-1]
    if method == "ours":
        assert "attention_bce" in log[0]
    assert (run / "samples" / "step_000004.png").exists()
    assert json.loads((run / "config.json").read_text())["method"] == method
    p = Purifier.from_pretrained(model, segmenter=None)
    img = np.zeros((20, 30, 3), np.uint8)
    out = p(img, np.zeros((20, 30), np.uint8))
    assert out.shape == img.shape
    assert p.meta["train"]["method"] == method


def test_resume_is_bit_exact(data, tmp_path):
    straight = train_purifier(_cfg(data, steps=4), tmp_path / "a", progress=False)
    train_purifier(_cfg(data, steps=2), tmp_path / "b", progress=False)
    resumed = train_purifier(_cfg(data, steps=4), tmp_path / "b", resume=True, progress=False)
    from safetensors.torch import load_file

    sa, sb = load_file(straight), load_file(resumed)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_refuses_to_overwrite_and_bad_config(data, tmp_path):
    train_purifier(_cfg(data, steps=1), tmp_path / "r", progress=False)
    with pytest.raises(EyepurifyError, match="--resume"):
        train_purifier(_cfg(data, steps=1), tmp_path / "r", progress=False)
    with pytest.raises(EyepurifyError, match="unknown method"):
        _cfg(data, method="nope")


def test_cli_train(data, tmp_path):
    c, s = data
    rc = main(["train", "--content", str(c), "--style", str(s), "--out", str(tmp_path / "cli"), "--net", "test_tiny",
               "--backbone", "test_tiny", "--size", "16x24", "--steps", "2", "--batch", "2"])
    assert rc == 0 and (tmp_path / "cli" / "model.safetensors").exists()


def test_content_augmentation_trains_resumes_and_is_recorded(data, tmp_path):
    c, s = data
    rc = main(["train", "--content", str(c), "--style", str(s), "--out", str(tmp_path / "aug"), "--net", "test_tiny",
               "--backbone", "test_tiny", "--size", "16x24", "--steps", "2", "--batch", "2", "--content-augment", "strong"])
    assert rc == 0
    cfg = json.loads((tmp_path / "aug" / "config.json").read_text())
    assert cfg["content_augment"] == "strong"
    straight = train_purifier(_cfg(data, steps=4, content_augment="strong"), tmp_path / "a4", progress=False)
    train_purifier(_cfg(data, steps=2, content_augment="strong"), tmp_path / "a2", progress=False)
    resumed = train_purifier(_cfg(data, steps=4, content_augment="strong"), tmp_path / "a2", resume=True, progress=False)
    a, b = load_file(straight), load_file(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """A tiny paired render folder, a task segmenter and a task gaze CNN trained on its indoor renders."""
    root = tmp_path_factory.mktemp("v2")
    assert main(["render", "--domain", "both", "--n", "8", "--size", "16x24", "--seed", "3", "--out", str(root / "r")]) == 0
    assert main(["train-segmenter", str(root / "r" / "indoor"), "--out", str(root / "seg"), "--steps", "2", "--batch", "2",
                 "--model", "test_tiny", "--size", "16x24", "--val-every", "2", "--checkpoint-every", "2"]) == 0
    assert main(["train-gaze", str(root / "r" / "indoor"), "--out", str(root / "gaze"), "--model", "test_tiny",
                 "--epochs", "1", "--size", "16x24"]) == 0
    return root


def _v2(root, **kw):
    pairs = root
    base = dict(content=(), style=(str(pairs / "r"),), pairs=(str(pairs / "r"),), net="test_tiny_v2", backbone="test_tiny",
                size=(16, 24), batch=2, steps=4, val_every=2, sample_every=2, checkpoint_every=2, pixel_weight=1.0,
                feature_weight=0.1, paper_weight=1e-3, task_segmenter=str(pairs / "seg" / "model.safetensors"), seg_weight=0.1,
                task_gaze=str(pairs / "gaze" / "model.safetensors"), gaze_weight=0.1, content_augment="strong")
    base.update(kw)
    return PurifierTrainConfig(**base)


@pytest.mark.parametrize("mask_input", ["labels", "predicted", "none"])
def test_v2_trains_every_term_and_resumes_bit_exactly(pairs, tmp_path, mask_input):
    cfg = _v2(pairs, mask_input=mask_input, swag=mask_input == "none")
    straight = train_purifier(cfg, tmp_path / "a", progress=False)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    for term in ("pixel", "feature", "seg", "gaze", "total", "objective"):
        assert all(np.isfinite(r[term]) for r in log), term
    assert "psnr" in log[-1]["val"]
    train_purifier(_v2(pairs, mask_input=mask_input, swag=mask_input == "none", steps=2), tmp_path / "b", progress=False)
    resumed = train_purifier(cfg, tmp_path / "b", resume=True, progress=False)
    sa, sb = load_file(straight), load_file(resumed)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    p = Purifier.from_pretrained(straight)
    assert p.net.config.upsample == "nearest" and p.needs_masks == (mask_input != "none")
    assert p.meta["color"] == "rgb" and p.meta["train"]["mask_input"] == mask_input


def test_v2_settings_are_checked(pairs):
    with pytest.raises(EyepurifyError, match="paired"):
        _v2(pairs, pairs=(), content=(str(pairs / "r" / "indoor"),))
    with pytest.raises(EyepurifyError, match="task segmenter"):
        _v2(pairs, task_segmenter=None)
    with pytest.raises(EyepurifyError, match="mask input"):
        _v2(pairs, mask_input="soft")
    with pytest.raises(EyepurifyError, match="either"):
        _v2(pairs, content=(str(pairs / "r" / "indoor"),))
    with pytest.raises(EyepurifyError, match="finite"):
        _v2(pairs, pixel_weight=float("nan"))


def test_v2_paper_objective_alone_is_the_v1_objective(data, tmp_path):
    """paper_weight 1 with no paired terms trains exactly as before the v2 fields existed."""
    a = train_purifier(_cfg(data, steps=2), tmp_path / "a", progress=False)
    b = train_purifier(_cfg(data, steps=2, paper_weight=1.0, mask_input="labels"), tmp_path / "b", progress=False)
    sa, sb = load_file(a), load_file(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_shows_a_progress_bar_only_where_asked(tmp_path):
    # no bar on a pipe or in a log file (as for every batch command) unless EYEPURIFY_PROGRESS=1
    from ..commands.test_new_user import cli

    c, s = _folder(tmp_path / "c", 4, 0), _folder(tmp_path / "s", 2, 1)

    def train(out: str, asked: str) -> str:
        r = cli("train", "--content", str(c), "--style", str(s), "--out", str(tmp_path / out), "--net", "test_tiny",
                "--backbone", "test_tiny", "--size", "16x24", "--steps", "3", "--batch", "2",
                "--content-segmenter", "none", "--method", "johnson",
                env={"EYEPURIFY_PROGRESS_DELAY": "0", "EYEPURIFY_PROGRESS": asked})
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stderr

    assert "step/s" not in train("piped", "")
    assert "3/3" in train("asked", "1")
