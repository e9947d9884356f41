"""A folder written by `eyepurify render` opens as one dataset (eyepurify.data.render_folder)."""

from __future__ import annotations

import pytest

from eyepurify.cli import main
from eyepurify.data import detect_format, open_dataset
from eyepurify.errors import DataError
from eyepurify.train.purifier_data import load_labelled_set, load_style_set


@pytest.fixture(scope="module")
def rd(tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "rd"
    assert main(["render", "--domain", "both", "--n", "3", "--size", "36x60", "--seed", "2", "--out", str(out)]) == 0
    return out


def test_render_folder_is_detected_and_holds_both_domains(rd):
    assert detect_format(rd) == "render"
    ds = open_dataset(rd)
    assert len(ds) == 6 and ds.domains == ["indoor", "wild"]
    assert "indoor" in ds[0].source and "wild" in ds[5].source
    assert all(s.labels is not None and s.gaze is not None for s in ds)
    # a domain sub-folder is still its own UnityEyes-style dataset
    assert detect_format(rd / "wild") == "unityeyes" and len(open_dataset(rd / "wild")) == 3


def test_one_domain_and_a_missing_one(rd):
    assert len(open_dataset(rd, domains=["wild"])) == 3
    with pytest.raises(DataError, match="has no 'night' domain"):
        open_dataset(rd, domains=["night"])


def test_train_accepts_a_render_folder_as_content_and_style(rd):
    images, labels, sources = load_labelled_set([rd], (36, 60), progress=False)
    assert images.shape == (6, 36, 60, 3) and labels.shape == (6, 36, 60)
    _, _, style_sources = load_style_set([rd], (36, 60))
    assert len(style_sources) == 3 and all("indoor" in s for s in style_sources)


def test_render_then_data_check(rd, capsys):
    assert main(["data", "check", str(rd)]) == 0
    assert "format render, 6 samples, 6 usable" in capsys.readouterr().out
