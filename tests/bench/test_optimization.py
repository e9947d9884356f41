"""Tests of eyepurify.bench.optimization (tiny renders, the test_tiny backbone)."""

from __future__ import annotations

import numpy as np
import pytest

from eyepurify.bench.optimization import (
    PairedCase,
    _otsu_threshold,
    contact_sheet,
    feature_distance,
    fit_dark_pupil,
    markdown_table,
    mean_std,
    paired_cases,
    run_paired_optimization,
)
from eyepurify.labels import pupil_center
from eyepurify.models.backbones import create_backbone
from eyepurify.sample import IRIS, PUPIL, SCLERA

SIZE = (24, 40)


@pytest.fixture(scope="module")
def cases() -> list[PairedCase]:
    return paired_cases(2, SIZE, seed=3)


@pytest.fixture(scope="module")
def tiny():
    return create_backbone("test_tiny", seed=0)


def test_paired_cases_are_seeded_and_styles_come_from_other_draws(cases: list[PairedCase]) -> None:
    again = paired_cases(2, SIZE, seed=3)
    for a, b in zip(cases, again, strict=True):
        assert np.array_equal(a.content, b.content) and np.array_equal(a.style, b.style)
    for c in cases:
        assert c.content.shape == c.target.shape == c.style.shape == (*SIZE, 3)
        assert c.labels.shape == SIZE and c.labels.dtype == np.uint8
        assert not np.array_equal(c.content, c.target)  # wild vs indoor look
    targets = [c.target for c in cases]
    assert not any(np.array_equal(c.style, t) for c in cases for t in targets)


def test_otsu_splits_two_levels() -> None:
    v = np.array([10.0] * 30 + [200.0] * 70)
    t = _otsu_threshold(v)
    assert 10.0 <= t < 200.0
    assert _otsu_threshold(np.full(5, 3.0)) == 3.0


def test_fit_dark_pupil_finds_a_dark_disk_off_the_iris_centre() -> None:
    h, w = 40, 60
    yy, xx = np.mgrid[:h, :w]
    labels = np.full((h, w), SCLERA, np.uint8)
    iris = (xx - 30) ** 2 + (yy - 20) ** 2 <= 12**2
    labels[iris] = IRIS
    pupil = ((xx - 33) ** 2 + (yy - 18) ** 2 <= 4**2) & iris
    labels[pupil] = PUPIL
    image = np.full((h, w, 3), 220, np.uint8)
    image[iris] = (110, 80, 50)
    image[pupil] = (15, 15, 15)
    c = fit_dark_pupil(image, labels)
    assert c is not None and np.hypot(*(c - np.array([33.0, 18.0]))) < 0.5
    # the fit uses the image, not the label map's pupil: a dark disk elsewhere moves it
    moved = image.copy()
    moved[pupil] = (110, 80, 50)
    moved[((xx - 25) ** 2 + (yy - 22) ** 2 <= 4**2)] = (15, 15, 15)
    c2 = fit_dark_pupil(moved, labels)
    assert c2 is not None and np.hypot(*(c2 - np.array([25.0, 22.0]))) < 0.5
    assert np.hypot(*(pupil_center(labels) - np.array([33.0, 18.0]))) < 0.5
    assert fit_dark_pupil(image, np.full((h, w), SCLERA, np.uint8)) is None
    assert fit_dark_pupil(np.full((h, w, 3), 90, np.uint8), labels) is None


def test_feature_distance_is_zero_for_identical_images_and_positive_otherwise(cases, tiny) -> None:
    same = feature_distance([c.target for c in cases], [c.target for c in cases], tiny, "conv3_2")
    assert same == [0.0, 0.0]
    diff = feature_distance([c.content for c in cases], [c.target for c in cases], tiny, "conv3_2")
    assert all(d > 0 for d in diff)


def test_mean_std_skips_non_finite() -> None:
    assert mean_std([1.0, 3.0, float("nan"), float("inf")]) == (2.0, 1.0)
    assert all(np.isnan(mean_std([float("nan")])))


def test_run_paired_optimization_rows(cases, tiny) -> None:
    inputs = [c.content.copy() for c in cases]
    rows, outputs = run_paired_optimization(cases, {"tiny": tiny}, {"tiny": tiny}, iters=3, seed=0)
    assert all(np.array_equal(a, c.content) for a, c in zip(inputs, cases, strict=True))
    names = [r["name"] for r in rows]
    assert names == ["raw input", "histogram matching", "Reinhard", "gatys / tiny", "masked / tiny"]
    assert set(outputs) == set(names)
    raw = rows[0]
    assert raw["psnr"] == mean_std(raw["per_image"]["psnr"])
    for o, c in zip(outputs["raw input"], cases, strict=True):
        assert np.array_equal(o, c.content)
    assert raw["change_from_input"] == (0.0, 0.0)
    for r in rows:
        assert r["n"] == 2
        for key in ("psnr", "ssim", "change_from_input", "feat_tiny", "pupil_shift_px"):
            m, s = r[key]
            assert np.isfinite(m) and s >= 0, (r["name"], key)
        assert len(r["per_image"]["ssim"]) == 2
    for r in rows[3:]:
        assert r["backbone"] == "tiny" and r["backbone_is_random"] is True
        assert r["iters_requested"] == 3
        for done, run in zip(r["iters_completed"], r["runs"], strict=True):
            # every run either did all requested iterations or says why it stopped
            assert done == 3 or run["stop_reason"] and run["stop_reason"] != "completed 3 iterations"
            assert run["objective_final"] <= run["objective_initial"]
            assert run["seconds_per_iter"] > 0
        assert r["stop_reasons"] == sorted(
            {run["stop_reason"] for run in r["runs"] if run["iters_completed"] != 3})
        assert r["evals_per_iter"] >= 1.0
        assert r["change_from_input"][0] > 0
        for o in outputs[r["name"]]:
            assert o.dtype == np.uint8 and o.shape == (*SIZE, 3)
    # the optimiser changed the image (init = content, so it started at the raw input)
    assert any(not np.array_equal(a, b) for a, b in zip(outputs["gatys / tiny"], outputs["raw input"], strict=True))
    table = markdown_table(rows, "tiny")
    assert table.count("\n") == 2 + len(rows)
    for r in rows[3:]:
        done = r["iters_completed"]
        cell = f"{done[0]} of 3" if min(done) == max(done) else f"{min(done)}–{max(done)} of 3"
        assert f"| {r['name']} | yes |" in table and cell in table


def test_contact_sheet_layout() -> None:
    a = np.zeros((5, 7, 3), np.uint8)
    b = np.full((5, 7, 3), 200, np.uint8)
    sheet = contact_sheet({"a": [a, a, a], "b": [b, b, b]}, scale=2, gap=1, header=10)
    assert sheet.shape == (10 + 3 * 11, 2 * 15, 3) and sheet.dtype == np.uint8
    assert (sheet[10:20, 15:29] == 200).all() and (sheet[10:20, 0:14] == 0).all()
    with pytest.raises(ValueError):
        contact_sheet({"a": [a], "b": [a, a]})
