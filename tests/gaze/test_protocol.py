from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.errors import DataError
from eyepurify.gaze.protocol import (
    GazeSet,
    cdf_figure,
    cumulative_curve,
    evaluate_estimator,
    load_gaze_set,
    summarize,
)


class Constant:
    """Predicts one (pitch, yaw) for every image."""

    def __init__(self, py: tuple[float, float]) -> None:
        self.py = np.asarray(py)
        self.fitted = False

    def fit(self, images: np.ndarray, pitchyaw: np.ndarray) -> Constant:
        self.fitted = True
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.tile(self.py, (len(images), 1))


def test_evaluate_estimator_gives_hand_computed_angles() -> None:
    est = Constant((0.0, 0.0))
    ims = np.zeros((3, 36, 60), np.uint8)
    truth = np.radians([[0.0, 10.0], [-20.0, 0.0], [0.0, -45.0]])
    errs = evaluate_estimator(est, (ims, truth), {"a": (ims, truth), "b": (ims[:1], truth[:1])})
    assert est.fitted
    np.testing.assert_allclose(errs["a"], [10.0, 20.0, 45.0], atol=1e-9)
    np.testing.assert_allclose(errs["b"], [10.0], atol=1e-9)


def test_summary_and_cumulative_curve() -> None:
    s = summarize(np.array([1.0, 2.0, 3.0, 6.0]))
    assert s["mean"] == 3.0 and s["median"] == 2.5 and s["n"] == 4
    assert s["std"] == pytest.approx(np.sqrt((4 + 1 + 0 + 9) / 4))
    t, share = cumulative_curve(np.array([1.0, 2.0, 3.0, 6.0]), max_deg=4.0, step=1.0)
    np.testing.assert_array_equal(t, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(share, [0, 0.25, 0.5, 0.75, 0.75])
    assert np.isnan(summarize(np.array([]))["mean"])


def test_cdf_figure_writes_a_png(tmp_path: Path) -> None:
    p = cdf_figure({"raw": np.array([3.0, 9.0]), "purified": np.array([1.0, 2.0])}, tmp_path / "x" / "cdf.png", "t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gaze_set_gray_and_subset() -> None:
    rgb = np.zeros((4, 72, 120, 3), np.uint8)
    rgb[:, :, :60] = 255
    s = GazeSet(rgb, np.zeros((4, 2)), None, "x")
    g = s.gray()
    assert g.shape == (4, 36, 60) and g[0, 0, 0] == 255 and g[0, 0, -1] == 0
    assert len(s.subset(slice(1, 3))) == 2


def test_load_gaze_set_reads_renders_with_their_gaze(tmp_path: Path) -> None:
    assert main(["render", "--n", "5", "--size", "36x60", "--domain", "wild", "--out", str(tmp_path), "--seed", "3"]) == 0
    s = load_gaze_set(tmp_path / "wild", size=(36, 60))
    assert s.rgb.shape == (5, 36, 60, 3) and s.labels is not None and s.labels.shape == (5, 36, 60)
    index = np.genfromtxt(tmp_path / "index.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    np.testing.assert_allclose(np.sort(s.pitchyaw[:, 1]), np.sort(index["yaw"]), atol=2e-4)  # the JSON look_vec has 4-5 digits
    sub = load_gaze_set(tmp_path / "wild", limit=2, size=(36, 60), seed=1)
    assert len(sub) == 2


def test_load_gaze_set_without_gaze_is_a_data_error(tmp_path: Path) -> None:
    from eyepurify.io import write_image

    for i in range(2):
        write_image(tmp_path / f"{i}.png", np.zeros((36, 60, 3), np.uint8))
    with pytest.raises(DataError, match="no sample has a gaze label"):
        load_gaze_set(tmp_path)
