import json
import math
from pathlib import Path

import numpy as np
import pytest

from eyepurify.bench.segmentation import centre_shifts, eye_width, score, split_real
from eyepurify.cli import main
from tests.synthetic_eyes import write_eye_folder

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_split_real_disjoint_seeded_and_sized():
    test, train = split_real(10, 0.5, seed=3)
    assert len(test) == 5 and len(train) == 5
    assert not set(test) & set(train) and set(test) | set(train) == set(range(10))
    t2, _ = split_real(10, 0.5, seed=3)
    assert np.array_equal(test, t2)
    assert not np.array_equal(test, split_real(10, 0.5, seed=4)[0])
    assert [len(x) for x in split_real(2, 0.9, 0)] == [1, 1]


def _disk(h, w, cx, cy, r, value, base=None):
    lab = np.zeros((h, w), np.uint8) if base is None else base.copy()
    yy, xx = np.mgrid[:h, :w]
    lab[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = value
    return lab


def test_eye_width_and_centre_shift_hand_made():
    eye = np.zeros((40, 60), np.uint8)
    eye[10:30, 10:50] = 1  # sclera spans columns 10..49
    assert eye_width(eye) == 40 and eye_width(np.zeros((4, 4), np.uint8)) == 0
    a = _disk(40, 60, 30, 20, 5, 3, _disk(40, 60, 30, 20, 10, 2, eye))
    b = _disk(40, 60, 33, 24, 5, 3, _disk(40, 60, 33, 24, 10, 2, eye))  # moved by (3, 4): 5 px
    empty = np.zeros((40, 60), np.uint8)
    res = centre_shifts([a, a, a], [b, a, empty], [40.0, 40.0, 40.0])
    assert res["n"] == 2 and res["n_total"] == 3  # no centre in the empty map
    assert res["px"] == pytest.approx([5.0, 0.0], abs=0.05)
    assert res["frac_mean"] == pytest.approx(2.5 / 40, abs=0.01)


def test_score_per_image_values():
    t = _disk(40, 60, 30, 20, 5, 3, _disk(40, 60, 30, 20, 10, 2))
    no_pupil = _disk(40, 60, 30, 20, 10, 2)
    shifted = _disk(40, 60, 36, 20, 5, 3, _disk(40, 60, 36, 20, 10, 2))
    s = score([t, shifted, np.zeros_like(t)], [t, t, no_pupil])
    assert s.conf.shape == (3, 4, 4) and s.conf[0].trace() == t.size
    assert s.err_pct[0] == pytest.approx(0.0, abs=1e-6)
    assert s.err_pct[1] == pytest.approx(100 * 6 / 60, abs=0.2)
    assert math.isnan(s.err_pct[2])  # ground truth has no pupil: not measured
    assert s.summary["n_no_eye"] == 1


def _rows(block):
    return {r["name"]: r for r in block["rows"]}


def test_bench_pupil_quick_end_to_end(tmp_path, capsys):
    syn = write_eye_folder(tmp_path / "syn", 10, seed=1, h=30, w=40)
    real = write_eye_folder(tmp_path / "real", 12, seed=2, h=48, w=64)
    out = tmp_path / "out"
    rc = main(["bench", "pupil", "--quick", "--out", str(out), "--synthetic", str(syn), "--real", str(real),
               "--cache", str(tmp_path / "cache"), "--renders", "6"])
    assert rc == 0
    headline = capsys.readouterr().out.strip().splitlines()[-1]
    assert headline.startswith("pupil (") and "strong augmentation" in headline
    for name in ("pupil.json", "pupil.md", "pupil_miou.png", "pupil_shift.png"):
        assert (out / name).stat().st_size > 0
    res = json.loads((out / "pupil.json").read_text())
    # the ceiling sees only the train part: the split is disjoint and covers every photo
    assert not set(res["test_stems"]) & set(res["train_stems"])
    assert len(res["test_stems"]) + len(res["train_stems"]) == res["n_real"] == 12
    assert res["ceiling"]["config"]["data"] == []  # trained from the in-memory train part only
    assert [b["source"] for b in res["blocks"]] == ["syn", "renderer"]
    expected = {"raw", "histogram matching", "Reinhard", "purified: ours", "purified: Johnson",
                "strong augmentation (domain randomisation), raw photos", "real-trained ceiling, raw photos",
                "raw (optimisation subset, 1 photos)", "masked optimisation (test_tiny, 2 it)"}
    for block in res["blocks"]:
        rows = _rows(block)
        assert set(rows) == expected
        for name, r in rows.items():
            sc = r["scores"]
            assert sc["n_images"] == (1 if "subset" in r else len(res["test_stems"]))
            assert 0.0 <= sc["miou_iris_pupil"] <= 1.0 and 0.0 <= sc["no_eye_share"] <= 1.0
            if name not in ("raw",) and "subset" not in r or name.startswith("masked"):
                d, lo, hi = r["vs_raw"]["miou"]
                assert all(math.isfinite(v) for v in (d, lo, hi)) and lo <= d <= hi
        assert block["centre_shift"]["purified: ours"]["n_total"] == len(res["test_stems"])
    # the cache is reused on a second run (no retraining)
    rc = main(["bench", "pupil", "--quick", "--out", str(tmp_path / "out2"), "--synthetic", str(syn), "--real",
               str(real), "--cache", str(tmp_path / "cache"), "--renders", "0"])
    res2 = json.loads((tmp_path / "out2" / "pupil.json").read_text())
    assert res2["ceiling"]["reused"] and all(m["reused"] for m in res2["blocks"][0]["models"].values())
    assert _rows(res2["blocks"][0])["raw"]["scores"] == _rows(res["blocks"][0])["raw"]["scores"]


def test_bench_pupil_missing_folder_is_a_clear_error(tmp_path, capsys):
    rc = main(["bench", "pupil", "--quick", "--out", str(tmp_path), "--real", str(tmp_path / "nope")])
    assert rc != 0
    assert "--real folder not found" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED / "real_eyes_seg").is_dir(), reason="../shared/data/real_eyes_seg absent (research-only data)")
def test_bench_pupil_quick_on_shared_data(tmp_path):
    rc = main(["bench", "pupil", "--quick", "--out", str(tmp_path), "--synthetic", str(SHARED / "unityeyes_seg"),
               "--real", str(SHARED / "real_eyes_seg"), "--cache", str(tmp_path / "cache"), "--renders", "0", "--limit", "8"])
    assert rc == 0
    res = json.loads((tmp_path / "pupil.json").read_text())
    assert res["full_size"] == [480, 640] and res["n_real"] == 8
    assert res["blocks"][0]["n_synthetic"] > 100
