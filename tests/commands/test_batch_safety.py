"""The --out guard, output names, resume checks, environment errors and kill -9 recovery
of the batch commands (purify, segment)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import eyepurify.io as eio
from eyepurify.cli import main
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net

from ..bad_corpus import eye


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny purifiers "p" and "q" (different weights) and a tiny segmenter "s", at 36×60."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, seed in (("p", 0), ("q", 1)):
        torch.manual_seed(seed)
        net = create_transform_net("test_tiny").eval()
        save_model(d / f"{name}.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
        out[name] = d / f"{name}.safetensors"
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    out["s"] = d / "s.safetensors"
    return out


def images(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    paths = []
    for i, n in enumerate(names):
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(eye(seed + i)).save(p)
        paths.append(p)
    return paths


def purify(models: dict[str, Path], *args: str, model: str = "p") -> list[str]:
    return ["purify", *args, "--model", str(models[model]), "--segmenter", str(models["s"])]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("eyepurify: error: "), err
    return lines[0]


# ---------------------------------------------------------------- 1. never write over a user's file


def test_out_holding_inputs_or_foreign_files_is_refused(models, tmp_path, capsys):
    src = tmp_path / "in"
    paths = images(src, ["a.png", "b.png"])
    before = [p.read_bytes() for p in paths]
    assert main(purify(models, *map(str, paths), "--out", str(src))) == 2
    assert "holds the input" in one_error_line(capsys)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(purify(models, *map(str, paths), "--out", str(other))) == 2
    assert "did not write it" in one_error_line(capsys)
    assert main(purify(models, *map(str, paths), "--out", str(other), "--resume")) == 2
    assert "nothing to resume" in one_error_line(capsys)
    (other / "report.txt").write_text("theirs")
    assert main(purify(models, *map(str, paths), "--out", str(other), "--overwrite")) == 2
    assert "report.txt: exists and was not written by eyepurify" in one_error_line(capsys)
    (other / "report.txt").unlink()
    (other / "a.png").write_text("a user's file")
    assert main(purify(models, *map(str, paths), "--out", str(other), "--overwrite")) == 0
    assert (other / "a.png").read_text() == "a user's file" and (other / "a_2.png").is_file()
    assert (other / "notes.txt").read_text() == "mine"
    assert main(purify(models, *map(str, paths), "--out", str(src), "--overwrite")) == 0
    assert [p.read_bytes() for p in paths] == before  # inputs untouched, outputs beside them
    assert (src / "a_2.png").is_file() and (src / "b_2.png").is_file()
    # a second --overwrite replaces eyepurify's own results, still never an input
    assert main(purify(models, str(paths[0]), "--out", str(other), "--overwrite")) == 0
    assert (other / "a.png").read_text() == "a user's file"


# ---------------------------------------------------------------- 2. unique, traceable names; --masks


def test_names_are_unique_and_traceable(models, tmp_path, capsys):
    files = images(tmp_path, ["a/d/x.png", "a/d/y.png", "b/d/x.png", "b/d/y.png"])
    out = tmp_path / "o1"
    assert main(purify(models, *map(str, files), "--out", str(out))) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if "masks" not in p.parts) == [
        "a/d/x.png", "a/d/y.png", "b/d/x.png", "b/d/y.png"]
    out = tmp_path / "o2"  # two folders with the same names: disambiguated, never overwritten
    assert main(purify(models, str(tmp_path / "a/d"), str(tmp_path / "b/d"), "--out", str(out))) == 0
    items = json.loads((out / "manifest.json").read_text())["items"]
    assert {k: v["input"] for k, v in items.items()} == {
        "x.png": str(tmp_path / "a/d/x.png"), "y.png": str(tmp_path / "a/d/y.png"),
        "x_2.png": str(tmp_path / "b/d/x.png"), "y_2.png": str(tmp_path / "b/d/y.png")}


def test_folder_keeps_file_names_and_masks_found_by_input_stem(models, tmp_path):
    folder = tmp_path / "photos"
    src = images(folder, ["r100.jpg", "ñandú.png"])
    masks = tmp_path / "masks"
    masks.mkdir()
    lab = np.zeros((36, 60), np.uint8)
    lab[10:26, 10:50] = 1
    for p in src:
        Image.fromarray(lab).save(masks / (p.stem + ".png"))
    for inputs in ([str(folder)], [str(p) for p in src]):
        out = tmp_path / f"out{len(inputs)}"
        assert main(purify(models, *inputs, "--out", str(out), "--masks", str(masks))) == 0
        items = json.loads((out / "manifest.json").read_text())["items"]
        assert sorted(items) == ["r100.png", "ñandú.png"]
        assert all(v["mask"] == "file" for v in items.values())
        np.testing.assert_array_equal(np.asarray(Image.open(out / "masks" / "r100.png")), lab)


def test_dataset_keeps_file_names_and_finds_masks_by_file_stem(models, tmp_path):
    assert main(["render", "--domain", "wild", "--n", "2", "--size", "36x60", "--seed", "0", "--out", str(tmp_path / "r")]) == 0
    masks = tmp_path / "masks"
    masks.mkdir()
    lab = np.zeros((36, 60), np.uint8)
    lab[12:24, 15:45] = 1
    for p in sorted((tmp_path / "r" / "wild").glob("*.png")):
        Image.fromarray(lab).save(masks / p.name)
    out = tmp_path / "out"
    assert main(purify(models, str(tmp_path / "r" / "wild"), "--out", str(out), "--masks", str(masks))) == 0
    items = json.loads((out / "manifest.json").read_text())["items"]
    assert sorted(items) == ["000000.png", "000001.png"]  # the samples' own file names (issue 23)
    assert {v["mask"] for v in items.values()} == {"file"}
    assert items["000000.png"]["input"].endswith("000000.json")


def test_segment_names_and_collisions(models, tmp_path):
    files = images(tmp_path, ["a/x.png", "b/x.png", "b/X.png"])
    out = tmp_path / "seg"
    assert main(["segment", *map(str, files), "--out", str(out), "--model", str(models["s"])]) == 0
    # names that differ only in case are disambiguated too (they would collide on macOS/Windows)
    assert sorted(p.relative_to(out).as_posix() for p in (out / "labels").rglob("*.png")) == [
        "labels/a/x.png", "labels/b/X_2.png", "labels/b/x.png"]


# ---------------------------------------------------------------- 3. resume checks model and settings


def test_resume_refuses_another_model_or_settings(models, tmp_path, capsys):
    files = images(tmp_path / "in", ["a.png", "b.png"])
    out = tmp_path / "out"
    base = [*map(str, files), "--out", str(out)]
    assert main(purify(models, str(files[0]), "--out", str(out))) == 0
    meta = json.loads((out / "manifest.json").read_text())["meta"]
    assert meta["settings"]["model_sha256"] == eio.file_sha256(models["p"])
    copy = tmp_path / "same_bytes.safetensors"
    copy.write_bytes(models["p"].read_bytes())
    assert main(["purify", *base, "--model", str(copy), "--segmenter", str(models["s"]), "--resume"]) == 0
    assert json.loads((out / "manifest.json").read_text())["meta"] == meta  # meta kept, not rewritten
    assert main(purify(models, *base, "--resume", model="q")) == 2
    assert "model_sha256" in one_error_line(capsys)
    assert main(purify(models, *base, "--resume", "--output", "crop")) == 2
    assert "output" in one_error_line(capsys)
    assert main(["segment", *base, "--model", str(models["s"]), "--resume"]) == 2
    assert "command" in one_error_line(capsys)


# ---------------------------------------------------------------- 7. size limit


def test_max_pixels_skips_and_reports(models, tmp_path, capsys):
    small, = images(tmp_path, ["small.png"])
    big = tmp_path / "big.png"
    Image.fromarray(eye(5, 120, 200)).save(big)
    out = tmp_path / "out"
    assert main(purify(models, str(small), str(big), "--out", str(out), "--max-pixels", "10k")) == 1
    report = (out / "report.txt").read_text()
    assert "big.png: image is 200×120 = 24,000 pixels, over the limit of 10,000 pixels" in report
    assert "--max-pixels" in report
    assert eio.max_pixels() == eio.DEFAULT_MAX_PIXELS  # the limit is scoped to the run
    with pytest.raises(SystemExit):
        main(purify(models, str(small), "--out", str(tmp_path / "x"), "--max-pixels", "lots"))
    capsys.readouterr()


# ---------------------------------------------------------------- 8. environment and model-file errors


def test_out_is_a_file_or_below_one(models, tmp_path, capsys):
    img, = images(tmp_path, ["a.png"])
    (tmp_path / "f").write_text("x")
    assert main(purify(models, str(img), "--out", str(tmp_path / "f"))) == 2
    assert "f: --out is a file" in one_error_line(capsys)
    assert main(purify(models, str(img), "--out", str(tmp_path / "f" / "sub"))) == 2
    assert "a file is in the way" in one_error_line(capsys)


@pytest.mark.parametrize(("code", "words"), [
    (errno.EACCES, "permission denied"), (errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_write_errors_are_one_line_exit_2(models, tmp_path, capsys, monkeypatch, code, words):
    img, = images(tmp_path, ["a.png"])
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith("a.png"):
            raise OSError(code, os.strerror(code))
        return real(src, dst)

    monkeypatch.setattr(eio.os, "replace", failing)
    out = tmp_path / "out"
    assert main(purify(models, str(img), "--out", str(out))) == 2
    line = one_error_line(capsys)
    assert words in line and str(out / "a.png") in line
    assert json.loads((out / "manifest.json").read_text())["items"]["a.png"]["status"] == "pending"
    monkeypatch.setattr(eio.os, "replace", real)
    assert main(purify(models, str(img), "--out", str(out), "--resume")) == 0  # fixed, then resumed


def test_unreadable_input_is_not_called_corrupt(tmp_path, monkeypatch):
    img, = images(tmp_path, ["a.png"])

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(img))

    monkeypatch.setattr(eio.Image, "open", denied)
    with pytest.raises(eio.DataError, match="permission denied") as e:
        eio.read_image(img)
    assert "corrupt" not in str(e.value)


def test_bad_model_metadata_is_one_line(models, tmp_path, capsys):
    from safetensors.torch import save_file

    img, = images(tmp_path, ["a.png"])
    net = create_transform_net("test_tiny")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    cases = {
        "json": {"eyepurify": "{not json"},
        "negative": {"eyepurify": json.dumps({"net": {**net.config.to_dict(), "width": -4}})},
        "dropout": {"eyepurify": json.dumps({"net": {**net.config.to_dict(), "dropout": 3}})},
        "scale": {"eyepurify": json.dumps({"net": net.config.to_dict(), "eye_scale": {"size": [36, 60]}})},
    }
    for name, meta in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(state, str(path), metadata=meta)
        assert main(["purify", str(img), "--out", str(tmp_path / name), "--model", str(path)]) == 2
        assert f"{name}.safetensors" in one_error_line(capsys)
        assert not (tmp_path / name).exists()
    seg = create_segmentation_net("test_tiny")
    for name, size in (("zero", [0, 0]), ("abc", "abc")):
        path = tmp_path / f"seg_{name}.safetensors"
        save_model(path, seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": size})
        assert main(["segment", str(img), "--out", str(tmp_path / name), "--model", str(path)]) == 2
        assert f"seg_{name}.safetensors: size is" in one_error_line(capsys)


# ---------------------------------------------------------------- kill -9 and --resume

KILLER = textwrap.dedent("""
    import os, signal, sys
    point, n = sys.argv[1], int(sys.argv[2])
    real, seen = os.replace, {"n": 0}

    def replace(src, dst):
        if point == "manifest" and not str(dst).endswith("manifest.json"):
            return real(src, dst)
        seen["n"] += 1
        if seen["n"] == n and point in ("before", "manifest"):
            os.kill(os.getpid(), signal.SIGKILL)  # temp file complete, rename not done
        real(src, dst)
        if seen["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)  # renamed, manifest not yet updated

    os.replace = replace
    from eyepurify.cli import main
    main(sys.argv[3:])
""")


def test_kill_9_at_several_points_then_resume(models, tmp_path):
    files = images(tmp_path / "in", [f"{i:02d}.png" for i in range(10)])
    common = [*map(str, files), "--batch", "3", "--model", str(models["p"]), "--segmenter", str(models["s"])]
    ref = tmp_path / "ref"
    assert main(["purify", *common, "--out", str(ref)]) == 0
    points = {"before": ("before", 7), "after": ("after", 12), "manifest": ("manifest", 3)}
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    procs = {
        name: subprocess.Popen([sys.executable, "-c", KILLER, point, str(n), "purify", *common, "--out",
                                str(tmp_path / name)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name, (point, n) in points.items()
    }
    for name, p in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == -9, (name, err.decode()[-2000:])
    for name in points:
        out = tmp_path / name
        json.loads((out / "manifest.json").read_text())  # never torn
        assert main(["purify", *common, "--out", str(out), "--resume"]) == 0
        assert not [p for p in out.rglob(".*") if p.name.endswith(".tmp")]
        for f in ref.rglob("*.png"):
            assert (out / f.relative_to(ref)).read_bytes() == f.read_bytes(), (name, f)
        done = json.loads((out / "manifest.json").read_text())["items"]
        assert sorted(done) == sorted(json.loads((ref / "manifest.json").read_text())["items"])
