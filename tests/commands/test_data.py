from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyepurify import cli
from eyepurify.io import write_image
from tests.data.test_folder import eye
from tests.data.test_unityeyes import annotation, write_pair


def messy_folder(root: Path) -> None:
    """images/ + masks/ with one good sample of each kind and five bad ones."""
    image, labels = eye()
    img, msk = root / "images", root / "masks"
    write_image(img / "good.png", image)
    write_image(msk / "good.png", labels)
    write_image(img / "nopupil.png", image)
    write_image(msk / "nopupil.png", eye(pupil=False)[1])
    deep = Image.fromarray(image[:, :, 0].astype(np.uint16) * 257)
    assert deep.mode == "I;16"
    deep.save(img / "deep16.png")
    write_image(msk / "deep16.png", labels)
    Image.fromarray(np.dstack([image, np.full(image.shape[:2], 128, np.uint8)])).save(img / "rgba.png")
    write_image(msk / "rgba.png", labels)
    write_image(img / "truncated.jpg", image)
    data = (img / "truncated.jpg").read_bytes()
    (img / "truncated.jpg").write_bytes(data[: len(data) // 2])
    write_image(msk / "truncated.png", labels)
    (img / "garbage.png").write_bytes(b"not an image at all")
    write_image(msk / "garbage.png", labels)
    write_image(img / "wrongsize.png", image)
    write_image(msk / "wrongsize.png", labels[:-2])
    write_image(img / "badlabels.png", image)
    write_image(msk / "badlabels.png", np.where(labels == 1, 7, labels).astype(np.uint8))
    write_image(img / "nomask.png", image)


def test_check_folder_counts_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy_folder(tmp_path)
    out_json = tmp_path / "report" / "check.json"
    assert cli.main(["data", "check", str(tmp_path), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}: format folder, 9 samples, 4 usable, 5 bad" in out
    assert "with label map                   4" in out
    assert "with pupil in label map          3" in out
    assert "with gaze                        0" in out
    assert "image sizes (W x H): 32x24 (4)" in out
    bad_lines = out.split("bad files (5):\n")[1].splitlines()
    assert len(bad_lines) == 5
    by_name = {Path(line.split(":")[0].strip()).name: line for line in bad_lines}
    assert "truncated" in by_name["truncated.jpg"] or "cannot decode" in by_name["truncated.jpg"]
    assert "cannot decode" in by_name["garbage.png"]
    assert "mask is 32×22 but its image is 32×24" in by_name["wrongsize.png"]
    assert "unknown label values [7]" in by_name["badlabels.png"]
    assert "mask missing" in by_name["nomask.png"]
    report = json.loads(out_json.read_text())
    assert report["format"] == "folder" and report["usable"] == 4 and len(report["bad"]) == 5
    assert report["counts"]["labels_pupil"] == 3


def test_check_unityeyes_with_malformed_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_pair(tmp_path, "1", annotation())
    broken = annotation()
    broken["eye_details"]["look_vec"] = "(0.1, 'up', -0.9, 0)"
    write_pair(tmp_path, "2", broken)
    write_pair(tmp_path, "3", "{not json")
    (tmp_path / "4.json").write_text(json.dumps(annotation()))
    assert cli.main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "format unityeyes, 3 samples, 1 usable, 3 bad" in out
    for key in ("with label map", "with pupil centre", "with gaze", "with head pose", "with landmarks"):
        assert f"{key:<26}{1:>8}" in out
    assert "2.json: key 'eye_details.look_vec'" in out
    assert "3.json: invalid JSON" in out
    assert "4.json: image missing" in out


def test_format_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_pair(tmp_path, "1", annotation())
    assert cli.main(["data", "check", str(tmp_path), "--format", "folder"]) == 0
    assert "format folder, 1 samples, 1 usable, 0 bad" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "empty", "all_bad", "unknown"])
def test_check_failures_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    path = tmp_path / "data"
    if case != "missing":
        path.mkdir()
    if case == "all_bad":
        (path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    if case == "unknown":
        (path / "readme.txt").write_text("no data")
    code = cli.main(["data", "check", str(path)])
    assert code == 2
    captured = capsys.readouterr()
    if case == "all_bad":
        assert "0 usable, 1 bad" in captured.out and "a.png: cannot decode" in captured.out
    else:
        err = captured.err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("eyepurify: error: ")
        assert str(path) in err
        expected = {"missing": "does not exist", "empty": "unknown data format", "unknown": "known formats"}
        assert expected[case] in err


def test_empty_images_folder_names_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert cli.main(["data", "check", str(tmp_path), "--format", "folder"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'images'}: no images found; supported: .png" in err


def test_check_shared_real_eyes(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "check", str(shared_data / "real_eyes_seg")]) == 0
    out = capsys.readouterr().out
    assert "format folder, 280 samples, 280 usable, 0 bad" in out
