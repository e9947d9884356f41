"""`eyepurify render` and `eyepurify render-sheet` (eyepurify.commands.render)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.data import unityeyes_spec as ue
from eyepurify.io import read_image, read_mask
from eyepurify.sample import IRIS, SCLERA


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_both_writes_paired_samples_deterministically(tmp_path):
    args = ["render", "--domain", "both", "--n", "3", "--size", "36x60", "--seed", "7"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a == b and len(a) == 1 + 2 * 3 * 3  # index + (image, mask, json) per domain and draw

    root = tmp_path / "a"
    rows = list(csv.DictReader((root / "index.csv").open()))
    assert [r["file"] for r in rows[:2]] == ["indoor/000000.png", "wild/000000.png"]
    for domain in ("indoor", "wild"):
        img = read_image(root / domain / "000001.png")
        assert img.shape == (36, 60, 3)
        read_mask(root / domain / "masks" / "000001.png", (36, 60))
    # paired: same labels and ground truth, different pixels
    np.testing.assert_array_equal(read_mask(root / "indoor/masks/000002.png"), read_mask(root / "wild/masks/000002.png"))
    assert rows[4]["gaze_x"] == rows[5]["gaze_x"] and rows[4]["pupil_y"] == rows[5]["pupil_y"]


def test_json_reads_back_like_unityeyes(tmp_path):
    assert main(["render", "--domain", "indoor", "--n", "2", "--size", "72x120", "--seed", "1",
                 "--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "indoor" / "000000.json").read_text())
    h = 72
    margin = ue.points_from_json(d["interior_margin_2d"], h)
    iris = ue.points_from_json(d["iris_2d"], h)
    assert margin.shape == (16, 2) and iris.shape == (32, 2)
    assert ue.points_from_json(d["caruncle_2d"], h).shape == (7, 2)
    ratio = ue.pupil_radius_ratio(float(d["eye_details"]["pupil_size"]))
    labels = ue.labels_from_landmarks((72, 120), margin, iris, ue.pupil_outline(iris, ratio))
    mask = read_mask(tmp_path / "indoor" / "masks" / "000000.png")
    inter = ((labels >= SCLERA) & (mask >= SCLERA)).sum()
    assert inter / ((labels >= SCLERA) | (mask >= SCLERA)).sum() > 0.9
    if (mask >= IRIS).sum() > 20:
        assert ((labels >= IRIS) & (mask >= IRIS)).sum() / ((labels >= IRIS) | (mask >= IRIS)).sum() > 0.85
    gaze = ue.look_vec_to_gaze(ue.parse_tuple(d["eye_details"]["look_vec"]))
    np.testing.assert_allclose(gaze, d["eyepurify"]["gaze"], atol=1e-3)
    head = ue.head_pose_from_unity(ue.parse_tuple(d["head_pose"]))
    np.testing.assert_allclose(head, d["eyepurify"]["head_pitchyaw"], atol=1e-5)
    np.testing.assert_allclose(iris.mean(axis=0), d["eyepurify"]["pupil_center"], atol=1e-3)


def test_factor_overrides_are_recorded(tmp_path):
    assert main(["render", "--domain", "wild", "--n", "1", "--size", "36x60", "--factors", "shadow=0.5,noise=0",
                 "--format", "jpg", "--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "wild" / "000000.json").read_text())
    f = d["eyepurify"]["wild_factors"]
    assert f["shadow"] == 0.5 and f["noise"] == 0.0 and 0.0 <= f["blur"] <= 1.0
    assert (tmp_path / "wild" / "000000.jpg").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n", "0"], "--n 0"),
        (["--size", "36by60"], "bad size"),
        (["--size", "4x60"], "out of range"),
        (["--factors", "fog=1"], "bad wild factor"),
        (["--factors", "noise=3"], "outside [0, 1]"),
        (["--factors", "glasses=lots"], "bad severity"),
        (["--wild-profile", "v1", "--factors", "glasses=0.5"], "only in the v2 wild profile"),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, extra, message):
    assert main(["render", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_wild_profile_is_recorded_and_indoor_does_not_depend_on_it(tmp_path):
    from eyepurify.data.render import draw_params, render
    from eyepurify.data.render_folder import RenderFolder, wild_profiles

    args = ["render", "--domain", "both", "--n", "2", "--size", "36x60", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "v2")]) == 0  # v2 is the CLI default
    assert main([*args, "--wild-profile", "v1", "--out", str(tmp_path / "v1")]) == 0
    for prof in ("v1", "v2"):
        root = tmp_path / prof
        rows = list(csv.DictReader((root / "index.csv").open()))
        assert {r["wild_profile"] for r in rows} == {prof}
        assert wild_profiles(root) == [prof] and RenderFolder(root).wild_profiles == [prof]
        for domain in ("indoor", "wild"):
            d = json.loads((root / domain / "000001.json").read_text())["eyepurify"]
            assert d["wild_profile"] == prof
        f = json.loads((root / "wild" / "000001.json").read_text())["eyepurify"]["wild_factors"]
        assert set(f) >= {"glasses", "stamp", "equalize"}
        if prof == "v1":
            assert all(f[n] == 0.0 for n in ("glasses", "stamp", "equalize"))
        # the written images are the API's renders of draw i with rng [seed, i, 1]
        ref = render(draw_params(4, 1), (36, 60), "wild", rng=np.random.default_rng([4, 1, 1]), profile=prof)
        np.testing.assert_array_equal(read_image(root / "wild" / "000001.png"), ref.image)
    a, b = tree_bytes(tmp_path / "v1" / "indoor"), tree_bytes(tmp_path / "v2" / "indoor")
    assert {k: v for k, v in a.items() if k.endswith(".png")} == {k: v for k, v in b.items() if k.endswith(".png")}
    assert read_image(tmp_path / "v1" / "wild" / "000000.png").tobytes() != read_image(
        tmp_path / "v2" / "wild" / "000000.png").tobytes()
    # folders written before the column existed were v1
    old = tmp_path / "v1" / "index.csv"
    lines = old.read_text().splitlines()
    old.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    assert wild_profiles(tmp_path / "v1") == ["v1"]


def test_render_sheet_without_data(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["render-sheet", "--out", str(out), "--data", str(tmp_path / "absent")]) == 0
    sheet = read_image(out)
    assert sheet.shape[0] == 6 * 72  # two blocks of indoor / labels / wild rows
    assert "reference rows skipped" in capsys.readouterr().out


def test_render_sheet_with_data(tmp_path, shared_data):
    out = tmp_path / "sheet.png"
    assert main(["render-sheet", "--out", str(out), "--data", str(shared_data)]) == 0
    assert read_image(out).shape[0] > 6 * 72


def test_unityeyes_loader_reads_the_output(tmp_path):
    from eyepurify.data.unityeyes import UnityEyesDataset

    assert main(["render", "--domain", "indoor", "--n", "3", "--size", "72x120", "--seed", "2",
                 "--out", str(tmp_path)]) == 0
    ds = UnityEyesDataset(tmp_path / "indoor")
    assert len(ds) == 3 and not ds.bad
    rows = list(csv.DictReader((tmp_path / "index.csv").open()))
    for i, row in enumerate(rows):
        s = ds[i]
        np.testing.assert_allclose(s.gaze, [float(row[k]) for k in ("gaze_x", "gaze_y", "gaze_z")], atol=1e-3)
        np.testing.assert_allclose(s.head_pose, [float(row["head_pitch"]), float(row["head_yaw"])], atol=1e-4)
        np.testing.assert_allclose(s.pupil_center, [float(row["pupil_x"]), float(row["pupil_y"])], atol=1e-3)
        mask = read_mask(tmp_path / "indoor" / "masks" / f"{i:06d}.png")
        both = (s.labels >= SCLERA) & (mask >= SCLERA)
        assert both.sum() / ((s.labels >= SCLERA) | (mask >= SCLERA)).sum() > 0.88
