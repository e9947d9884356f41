from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eyepurify.cli import main

SIMGAN_ROW = "CNN trained on SimGAN-refined training set, raw test"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gaze_quick")
    assert main(["bench", "gaze", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "gaze.json").read_text())


def test_quick_writes_files_and_the_table(quick, capsys) -> None:  # type: ignore[no-untyped-def]
    out, res = quick
    assert (out / "gaze_cdf.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "gaze.md").read_text()
    for row in ("indoor renders of the test draws (same domain)", "| raw |", "histogram matching", "Reinhard",
                "purified (ours)", "raw (subset of 2)", "masked optimisation (subset of 2"):
        assert row in md, row
    assert "| SVR | ALR | RF | kNN | CNN |" in md
    s = res["settings"]
    assert s["n_train"] == 200 and s["n_test"] == 100 and s["seed"] == 0


def test_quick_numbers_are_finite_and_plausible(quick) -> None:  # type: ignore[no-untyped-def]
    _, res = quick
    summary = res["summary"]
    for row, cells in summary.items():
        for est, c in cells.items():
            assert math.isfinite(c["mean"]) and 0.0 <= c["mean"] <= 180.0, (row, est)
    # optimisation rows only for the CNN and kNN; every classical estimator beats chance on the floor row
    opt = next(r for r in summary if r.startswith("masked optimisation"))
    assert set(summary[opt]) == {"cnn", "knn"}
    floor = summary["indoor renders of the test draws (same domain)"]
    for est in ("svr", "alr", "rf", "knn"):
        assert floor[est]["mean"] < res["mean_guess_error_deg"], est
    assert len(res["cnn_errors_deg"]["raw"]) == 100


def test_quick_simgan_row_and_its_difference(quick) -> None:  # type: ignore[no-untyped-def]
    out, res = quick
    assert set(res["summary"][SIMGAN_ROW]) == {"cnn"}
    assert math.isfinite(res["simgan"]["mean_abs_diff"]) and isinstance(res["simgan"]["near_identity"], bool)
    assert "grey levels" in (out / "gaze.md").read_text()


def test_user_train_and_test_sets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["render", "--n", "60", "--domain", "indoor", "--out", str(data / "a"), "--seed", "7"]) == 0
    assert main(["render", "--n", "20", "--domain", "wild", "--out", str(data / "b"), "--seed", "8"]) == 0
    out = tmp_path / "out"
    assert main(["bench", "gaze", "--quick", "--out", str(out), "--train", str(data / "a" / "indoor"),
                 "--test", str(data / "b" / "wild"), "--estimators", "knn", "svr", "--purifier", "none",
                 "--optimize-n", "0", "--simgan-steps", "0", "--size", "36x60"]) == 0
    res = json.loads((out / "gaze.json").read_text())
    assert res["settings"]["n_test"] == 20 and res["settings"]["n_train"] <= 60
    assert "unityeyes" in res["settings"]["train"]
    assert set(res["summary"]) == {"held-out training-domain images (same domain)", "raw", "histogram matching", "Reinhard"}
    assert all(math.isfinite(c["mean"]) for cells in res["summary"].values() for c in cells.values())
    assert not (out / "gaze_cdf.png").exists()  # no CNN, no curves


def test_test_without_train_uses_indoor_renders(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert main(["render", "--n", "12", "--domain", "wild", "--out", str(data), "--seed", "9"]) == 0
    out = tmp_path / "o"
    assert main(["bench", "gaze", "--quick", "--out", str(out), "--test", str(data / "wild"), "--estimators", "knn",
                 "--purifier", "none", "--optimize-n", "0", "--simgan-steps", "0"]) == 0
    res = json.loads((out / "gaze.json").read_text())
    assert res["settings"]["n_test"] == 12 and "indoor renders (same domain)" in res["summary"]


def test_people_split_real_ceiling_and_augmented_cnn(tmp_path: Path) -> None:
    import numpy as np

    from eyepurify.io import write_image
    from tests.data.test_columbia import patch

    for s in range(1, 5):  # four people, six gaze directions each (Columbia Gaze file names)
        for k, (v, h) in enumerate([(0, -10), (0, 0), (0, 10), (10, -5), (-10, 5), (10, 15)]):
            write_image(tmp_path / "cg" / f"{s:04d}_2m_0P_{v}V_{h}H_L.jpg", patch(10 * s + k))
    out = tmp_path / "o"
    assert main(["bench", "gaze", "--quick", "--out", str(out), "--test", str(tmp_path / "cg"), "--estimators", "knn",
                 "cnn", "--purifier", "none", "--optimize-n", "0", "--simgan-steps", "0", "--augment-copies", "1"]) == 0
    res = json.loads((out / "gaze.json").read_text())
    assert res["settings"]["n_test"] == 12  # two of the four people are the test set
    ceiling = next(r for r in res["summary"] if "real patches of other people (12)" in r)
    augmented = next(r for r in res["summary"] if "strong photometric augmentation" in r)
    assert set(res["summary"][ceiling]) == set(res["summary"][augmented]) == {"cnn"}
    people = next(n for n in res["notes"] if n.startswith("test people"))
    assert len(people.split(":")[1].split(";")[0].split(",")) == 2
    assert np.isfinite(res["summary"][ceiling]["cnn"]["mean"])


def test_cnn_seeds_table_with_calibration_ordering_and_compare_rows(tmp_path: Path) -> None:
    from eyepurify.io import write_image
    from tests.data.test_columbia import patch

    k = 0
    for s in range(1, 5):  # four people; every vertical × horizontal target at two head poses
        for p in (0, 15):
            for v in (-10, 0, 10):
                for h in (-5, 5):
                    k += 1
                    write_image(tmp_path / "cg" / f"{s:04d}_2m_{p}P_{v}V_{h}H_L.jpg", patch(k))
    out = tmp_path / "o"
    assert main(["bench", "gaze", "--quick", "--out", str(out), "--test", str(tmp_path / "cg"), "--estimators", "cnn",
                 "--purifier", "none", "--compare", "v1=v1", "--optimize-n", "0", "--simgan-steps", "0",
                 "--augment-copies", "0", "--cnn-seeds", "2", "--size", "36x60"]) == 0
    res = json.loads((out / "gaze.json").read_text())
    seeds = res["cnn_seeds"]
    assert set(seeds) == {"raw", "histogram matching", "Reinhard", "purified (v1)"}
    for row in seeds.values():
        assert len(row["seed_means"]) == 2 and row["spread"] >= 0
        for key in ("calibrated", "frontal", "rho_pitch", "rho_yaw"):
            assert key in row and (math.isfinite(row[key]) or key.startswith("rho")), key
    assert "vs_raw" in seeds["purified (v1)"] and "vs_raw" not in seeds["raw"]
    assert "CNN over 2 training seeds" in (out / "gaze.md").read_text()
