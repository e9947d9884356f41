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


def test_mpiigaze_block_purifies_patches_at_their_own_size(tmp_path):
    import argparse

    from eyepurify.bench.sim2real import mpiigaze_domain
    from eyepurify.io import write_image

    rng = np.random.default_rng(0)
    for i in range(12):
        write_image(tmp_path / f"p{i}.png", rng.integers(0, 255, (36, 60), dtype=np.uint8))
    seen = []

    class Shipped:
        def purify_arrays(self, ims):
            seen.extend(im.shape for im in ims)
            return [255 - im for im in ims]

    r = mpiigaze_domain(tmp_path, Shipped(), argparse.Namespace(mpiigaze_n=12, seed=0))
    assert seen == [(36, 60, 3)] * 12
    assert [row["method"] for row in r["rows"]][0] == "raw" and len(r["rows"]) == 4
    assert r["rows"][0]["change_from_raw"] == 0 and r["rows"][-1]["change_from_raw"] > 50
    assert mpiigaze_domain(tmp_path / "absent", Shipped(), argparse.Namespace(mpiigaze_n=8, seed=0)) is None
