"""The generated bad-input corpus (tests/bad_corpus.py) through purify, segment and data
check: no tracebacks, every bad input named in report.txt, every good input written, no
input file changed (not even with --out inside the corpus and --overwrite)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eyepurify.cli import main
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net

from ..bad_corpus import MAX_PIXELS, Corpus, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return write_corpus(tmp_path_factory.mktemp("bad") / "corpus")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny purifier, tiny segmenter) model files trained at 36×60."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    save_model(d / "p.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    return d / "p.safetensors", d / "s.safetensors"


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` (links and FIFOs are not followed)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process (an exception escaping ``main`` fails the test); (rc, stderr)."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def report_inputs(out: Path) -> dict[str, str]:
    lines = (out / "report.txt").read_text(encoding="utf-8").splitlines()
    assert all("\t" in line for line in lines)
    return dict(line.split("\t", 1) for line in lines)


def by_input(out: Path) -> dict[str, dict[str, object]]:
    items = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["items"]
    return {v["input"]: {**v, "key": k} for k, v in items.items()}


def test_purify_corpus(corpus: Corpus, models: tuple[Path, Path], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(corpus.root)
    before = snapshot(corpus.root)
    out = tmp_path / "out"
    files = [str(Path(p).relative_to(corpus.root)) for p in corpus.image_files()]
    rc, err = run(["purify", *files, "sub_a/x.png", "sub_b/x.png", "ue", "mpii.h5", "damaged.h5",
                   corpus.truncated_video, "--out", str(out), "--model", str(models[0]), "--segmenter", str(models[1]),
                   "--max-pixels", str(MAX_PIXELS), "--batch", "8"], capsys)
    assert rc == 1
    reported = report_inputs(out)
    for name in [*corpus.bad, *corpus.ue_bad, "damaged.h5"]:
        assert name in reported, name
        assert name in reported[name]  # the reason names the file too
    assert re.search(r"truncated: \d+ of the 24 frames", reported[corpus.truncated_video + "#truncated"])
    items = by_input(out)
    for name, shape in {**corpus.good, "sub_a/x.png": (36, 60), "sub_b/x.png": (36, 60)}.items():
        it = items[name]
        assert it["status"] == "done", (name, it)
        assert np.asarray(Image.open(out / str(it["key"]))).shape[:2] == shape, name
    assert items["sub_a/x.png"]["key"] == "sub_a/x.png" and items["sub_b/x.png"]["key"] == "sub_b/x.png"
    assert {items["img/Case.png"]["key"], items["img/case.png"]["key"]} == {"img/Case.png", "img/case_2.png"}
    assert items["img/ñandú ü.png"]["key"] == "img/ñandú ü.png"
    for i in range(4):
        assert (out / f"mpii_{i:06d}.png").is_file()  # HDF5 accepted, as data check reads it
    long = sorted(str(items[f"img/{c * 251}.png"]["key"]) for c in "nN")  # equal but for case: one is x_2
    assert long[0] == "img/" + "N" * 251 + ".png" and long[1].endswith("_2.png") and len(os.fsencode(long[1][4:])) == 255
    done = [v for v in items.values() if v["status"] == "done"]
    assert len(done) == len(corpus.good) + 2 + len(corpus.ue_good) + 4 + 1
    assert len({v["key"] for v in done}) == len(done)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert snapshot(corpus.root) == before  # no input changed


def test_purify_folder_mode_and_segment(corpus: Corpus, models: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(corpus.root)
    out = tmp_path / "folder"
    rc, _ = run(["purify", str(corpus.img), "--out", str(out), "--model", str(models[0]), "--segmenter",
                 str(models[1]), "--max-pixels", str(MAX_PIXELS)], capsys)
    assert rc == 1
    reported = report_inputs(out)
    for name in corpus.bad:
        if not name.endswith(".gif"):  # a folder lists only files named like images
            assert str(corpus.root / name) in reported, name
    items = by_input(out)
    for name in corpus.good:
        assert items[str(corpus.root / name)]["status"] == "done", name
    assert items[str(corpus.img / "photo.jpg")]["key"] == "photo.png"  # a folder keeps its file names
    index = (out / "index.csv").read_text(encoding="utf-8")  # undecodable names escaped, valid UTF-8
    cells = {line.split(",")[0] for line in index.splitlines()[1:]}
    assert {"'=HYPERLINK(x).png", "'+1.png", "'-1.png", "'@cmd.png", "latin1_\\xe9.png"} <= cells

    out = tmp_path / "seg"
    rc, _ = run(["segment", *corpus.image_files(), "--out", str(out), "--model", str(models[1]),
                 "--max-pixels", str(MAX_PIXELS)], capsys)
    assert rc == 1
    reported = report_inputs(out)
    for name in corpus.bad:
        assert str(corpus.root / name) in reported, name
    items = by_input(out)
    for name in corpus.good:
        key = str(items[str(corpus.root / name)]["key"])
        assert key.startswith("labels/") and (out / key).is_file() and (out / "overlays" / key[7:]).is_file()
    assert snapshot(corpus.root) == before


@pytest.mark.parametrize(("name", "usable"), [("img", 27), ("ue", 2), ("mpii.h5", 4), ("damaged.h5", 0)])
def test_data_check_corpus(corpus: Corpus, name: str, usable: int, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = run(["data", "check", str(corpus.root / name), "--max-pixels", str(MAX_PIXELS),
                   "--json", str(tmp_path / "r.json")], capsys)
    if usable == 0:
        assert rc == 2 and "damaged.h5" in err and len(err.strip().splitlines()) == 1
        return
    assert rc == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["usable"] == usable
    bad = " ".join(b["reason"] for b in result["bad"])
    expected = corpus.bad if name == "img" else corpus.ue_bad if name == "ue" else []
    for b in expected:
        if not b.endswith(".gif"):
            assert str(corpus.root / b) in bad, b


def test_overwrite_into_the_corpus_never_touches_an_input(models: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    c = write_corpus(tmp_path / "c", unityeyes=False, h5=False)
    before = snapshot(c.img)
    args = ["purify", *c.image_files(), "--out", str(c.img), "--model", str(models[0]),
            "--segmenter", str(models[1]), "--max-pixels", str(MAX_PIXELS)]
    rc, err = run(args, capsys)
    assert rc == 2 and "holds the input" in err  # refused without --overwrite
    assert snapshot(c.img) == before
    rc, _ = run([*args, "--overwrite"], capsys)
    assert rc == 1
    after = snapshot(c.img)
    assert {k: after[k] for k in before} == before  # every input byte-identical
    assert (c.img / "plain_2.png").is_file() or (c.img / "plain_3.png").is_file()
