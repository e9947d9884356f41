import json

import numpy as np
import pytest
import torch

from eyepurify.cli import main
from eyepurify.errors import WeightsError
from eyepurify.io import read_mask, write_image
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.sample import IRIS, PUPIL
from eyepurify.segment import Segmenter
from eyepurify.train.segmenter import SegmenterConfig, train

from .synthetic_eyes import SyntheticEyes, synthetic_eye, write_eye_folder


def constant_net(cls=IRIS):
    """A network that predicts ``cls`` everywhere (tiny head weights, one large positive bias).
    The head weights are not zero: a network whose logits are the same at every pixel is
    refused at load (eyepurify.models.probe)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = create_segmentation_net("test_tiny").eval()
    with torch.no_grad():
        net.head.weight.mul_(5e-2)
        net.head.bias.zero_()
        net.head.bias[cls] = 5.0
    return net


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "iris.safetensors"
    net = constant_net(IRIS)
    save_model(path, net, {"kind": "segmentation", "net": net.config.to_dict(), "size": [24, 40]})
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = SegmenterConfig(steps=3, batch=4, size=(24, 40), model="test_tiny", val_fraction=0.25, checkpoint_every=2)
    train(cfg, run, datasets=[SyntheticEyes(8)], progress=False)
    return run


def test_segmenter_shapes_and_containers(trained_run):
    seg = Segmenter.from_checkpoint(trained_run / "model.safetensors")
    assert seg.size == (24, 40)
    rng = np.random.default_rng(0)
    batch = np.stack([synthetic_eye(rng, 30, 50)[0] for _ in range(3)])
    out = seg(batch)
    assert out.shape == (3, 30, 50) and out.dtype == np.uint8 and out.max() <= 3
    mixed = [synthetic_eye(rng, 24, 40)[0], synthetic_eye(rng, 61, 97)[0], batch[0]]
    labs = seg(mixed)
    assert isinstance(labs, list) and [lab.shape for lab in labs] == [(24, 40), (61, 97), (30, 50)]
    np.testing.assert_array_equal(labs[2], out[0])  # batching/grouping does not change results
    assert seg(batch[0]).shape == (30, 50)
    with pytest.raises(ValueError, match="uint8"):
        seg([batch[0].astype(np.float32)])


def test_checkpoint_and_model_file_give_the_same_predictions(trained_run):
    img = synthetic_eye(np.random.default_rng(1), 24, 40)[0]
    a = Segmenter.from_checkpoint(trained_run / "model.safetensors")(img)
    b = Segmenter.from_checkpoint(trained_run / "checkpoint.safetensors")(img)
    np.testing.assert_array_equal(a, b)


def test_orphan_fix_is_switchable(iris_model):
    img = np.full((24, 40, 3), 128, np.uint8)
    fixed = Segmenter.from_checkpoint(iris_model)(img)
    raw = Segmenter.from_checkpoint(iris_model, orphan_fix=False)(img)
    assert (raw == IRIS).all()
    assert (fixed == PUPIL).any() and set(np.unique(fixed)) == {IRIS, PUPIL}
    big = Segmenter.from_checkpoint(iris_model, pupil_factor=0.6)(img)
    assert (big == PUPIL).sum() > (fixed == PUPIL).sum()


def test_bad_model_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        Segmenter.from_checkpoint(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(WeightsError, match="junk.safetensors"):
        Segmenter.from_checkpoint(junk)
    other = tmp_path / "other.safetensors"
    save_model(other, constant_net(), {"kind": "purifier", "net": {}})
    with pytest.raises(WeightsError, match="not a segmentation model"):
        Segmenter.from_checkpoint(other)


def _inputs(tmp_path):
    folder = write_eye_folder(tmp_path / "eyes", 3)  # images/ + masks/ layout
    loose = tmp_path / "loose"
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        write_image(loose / f"{name}.png", synthetic_eye(rng, 30, 48)[0])
    (loose / "broken.png").write_bytes(b"not a png")
    return [str(folder), str(loose / "*.png"), str(tmp_path / "missing.png")]


def test_cli_segments_reports_and_resumes(tmp_path, iris_model, capsys):
    out = tmp_path / "out"
    args = ["segment", *_inputs(tmp_path), "--out", str(out), "--model", str(iris_model), "--batch", "2"]
    assert main(args) == 1  # some inputs failed
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert labels == ["a.png", "b.png", "e00.png", "e01.png", "e02.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == labels
    lab = read_mask(out / "labels" / "a.png", (30, 48))
    assert (lab == PUPIL).any()  # orphan fix on by default
    manifest = json.loads((out / "manifest.json").read_text())
    items = manifest["items"]
    assert items["labels/a.png"]["status"] == "done" and items["labels/a.png"]["pupil_method"].startswith("pupil")
    failed = {k: v for k, v in items.items() if v["status"] == "failed"}
    assert len(failed) == 2
    report = (out / "report.txt").read_text()
    assert "broken.png" in report and "missing.png" in report
    assert not list(out.rglob(".*.tmp"))

    # Without --resume an existing output folder is refused; with it, done files are skipped.
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    before = (out / "labels" / "e00.png").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 1
    assert "5 already done" in capsys.readouterr().out
    assert (out / "labels" / "e00.png").stat().st_mtime_ns == before


def test_cli_no_orphan_fix_and_missing_model(tmp_path, iris_model, capsys):
    img = tmp_path / "x.png"
    write_image(img, np.full((20, 30, 3), 90, np.uint8))
    out = tmp_path / "o"
    assert main(["segment", str(img), "--out", str(out), "--model", str(iris_model), "--no-orphan-fix"]) == 0
    lab = read_mask(out / "labels" / "x.png")
    assert (lab == IRIS).all()
    assert main(["segment", str(img), "--out", str(tmp_path / "p"), "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


def test_cli_working_size(tmp_path, iris_model, capsys):
    img = tmp_path / "x.png"
    write_image(img, np.full((48, 64, 3), 90, np.uint8))
    out = tmp_path / "o"
    assert main(["segment", str(img), "--out", str(out), "--model", str(iris_model), "--size", "12x16"]) == 0
    assert json.loads((out / "manifest.json").read_text())["meta"]["size"] == [12, 16]
    assert read_mask(out / "labels" / "x.png").shape == (48, 64)
    with pytest.raises(SystemExit) as e:
        main(["segment", str(img), "--out", str(tmp_path / "p"), "--model", str(iris_model), "--size", "12by16"])
    assert e.value.code == 2 and "bad size '12by16'" in capsys.readouterr().err


def test_cli_reads_a_folder_as_purify_does(tmp_path, iris_model, capsys):
    from eyepurify.engines.manifest import Manifest
    from eyepurify.engines.plan import IMAGE_LAYOUT, LABEL_LAYOUT, expand_inputs, plan

    # images/ + masks/ with one mask missing: segment ignores masks, so no image is bad
    folder = write_eye_folder(tmp_path / "eyes", 3)
    (folder / "masks" / "e01.png").unlink()
    # a render folder (its files' relative names, as purify gives them)
    assert main(["render", "--n", "1", "--out", str(tmp_path / "r"), "--seed", "3"]) == 0
    inputs = [str(folder), str(tmp_path / "r")]
    out = tmp_path / "o"
    assert main(["segment", *inputs, "--out", str(out), "--model", str(iris_model)]) == 0
    labels = sorted(p.relative_to(out / "labels").as_posix() for p in (out / "labels").rglob("*.png"))
    assert labels == ["e00.png", "e01.png", "e02.png", "indoor/000000.png", "wild/000000.png"]
    # the same names purify claims for these inputs
    names = {}
    for layout in (IMAGE_LAYOUT, LABEL_LAYOUT):
        m = Manifest.open(tmp_path / f"plan_{len(names)}")
        units = plan(expand_inputs(inputs), m, layout, labels=layout is IMAGE_LAYOUT)
        names[layout] = [u.source for u in units], [u.outputs[0].rsplit("/", 1)[-1] for u in units]
    assert names[IMAGE_LAYOUT] == names[LABEL_LAYOUT]
    capsys.readouterr()
