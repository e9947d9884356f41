"""`eyepurify bench sim2real --quick` on generated fixtures (no shared data needed)."""

import json

import numpy as np

from eyepurify.bench.sim2real import canonical_set
from eyepurify.cli import main
from eyepurify.eyescale import EyeScale, eye_box


def test_synthetic_sets_are_cut_to_the_canonical_scale():
    lab = np.zeros((240, 320), np.uint8)
    lab[100:140, 60:260] = 1  # an eye 200 px wide
    img = np.zeros((240, 320, 3), np.uint8)
    scale = EyeScale.for_renders((72, 120))
    ims, labs = canonical_set([img, img], [lab, np.zeros_like(lab)], scale)
    assert len(ims) == 1 and ims[0].shape == (72, 120, 3)  # the map without an eye is dropped
    x0, _, x1, _ = eye_box(labs[0])
    assert abs((x1 - x0) - scale.eye_width) <= 1.5


def test_sim2real_quick_writes_its_tables(tmp_path):
    out = tmp_path / "out"
    none = tmp_path / "none"
    assert main(["bench", "sim2real", "--quick", "--real", str(none), "--synthetic", str(none), "--out", str(out)]) == 0
    r = json.loads((out / "sim2real.json").read_text())
    assert r["quick"] and len(r["test_stems"]) == r["n_test"] == 4
    blocks = {row["block"] for row in r["rows"]}
    assert "shipped defaults (whole photos)" in blocks and any(b.startswith("renders segmenter (a") for b in blocks)
    names = [row["name"] for row in r["rows"] if row["block"].startswith("renders segmenter (a")]
    assert names[0] == "raw" and any(n.startswith("purified: ours, real content → renders style (β = 1e4") for n in names)
    assert any(n.startswith("purified: Johnson, real content") for n in names)
    assert any(n.startswith("SimGAN: segmenter trained on refined renders") for n in names)
    subset = [row for row in r["rows"] if "subset" in row]
    assert [row["name"].split(" ")[0] for row in subset] == ["raw", "masked"] and "vs_raw" in subset[1]
    ablation = [row["name"] for row in r["rows"] if row["block"].startswith("ablations, renders style (a")]
    assert len(ablation) == 3 and "one style image" in ablation and "no content augmentation" in ablation
    assert all("vs_raw" in row for row in r["rows"] if not row["name"].startswith("raw"))
    assert (out / "sim2real.md").read_text().count("\n|") >= len(r["rows"]) + 1
    assert (out / "sim2real_miou.png").stat().st_size > 1000
    assert not (out / "sim2real_sheet.png").exists()  # fixtures only: no sheet
