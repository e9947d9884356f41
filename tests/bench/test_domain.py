import json

import numpy as np
import pytest

from eyepurify.bench.domain import (
    domain_classifier_accuracy,
    fit_pca,
    frechet_distance,
    split_half_fd,
)
from eyepurify.cli import main


def exact_gaussian(n: int, mean, cov, seed: int) -> np.ndarray:
    """n samples whose sample mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    mean, cov = np.atleast_1d(np.asarray(mean, float)), np.atleast_2d(np.asarray(cov, float))
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False))).T)  # exactly identity covariance
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_1d_hand_computed():
    # FD of 1-D Gaussians = (μa − μb)² + (σa − σb)² = 2² + (3 − 1)² = 8
    a = exact_gaussian(50, [1.0], [[9.0]], 0)
    b = exact_gaussian(70, [3.0], [[1.0]], 1)
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=1e-6)
    assert frechet_distance(a[:, 0], b[:, 0]) == pytest.approx(8.0, rel=1e-6)  # 1-D vectors accepted


def test_frechet_2d_diagonal_and_general():
    # diagonal: |Δμ|² + Σ (σa_i − σb_i)² = (1 + 4) + ((2 − 1)² + (1 − 3)²) = 10
    a = exact_gaussian(40, [0.0, 0.0], np.diag([4.0, 1.0]), 2)
    b = exact_gaussian(40, [1.0, 2.0], np.diag([1.0, 9.0]), 3)
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=1e-6)
    # non-commuting covariances: tr(A + B − 2 (A^½ B A^½)^½) by eigendecompositions
    A = np.array([[2.0, 0.8], [0.8, 1.0]])
    B = np.array([[1.0, -0.5], [-0.5, 3.0]])

    def sqrtm_sym(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(w)) @ v.T

    ra = sqrtm_sym(A)
    expected = 0.5**2 + np.trace(A + B - 2 * sqrtm_sym(ra @ B @ ra))
    a = exact_gaussian(60, [0.0, 0.5], A, 4)
    b = exact_gaussian(60, [0.0, 0.0], B, 5)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_identical_sets_vs_shifted_sets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert split_half_fd(x, 0) < 1.0
    same = rng.normal(size=(200, 6))
    acc_same = domain_classifier_accuracy(x, same, seed=0)
    assert 0.35 < acc_same < 0.65
    shifted = rng.normal(size=(200, 6)) + 3.0
    assert frechet_distance(x, shifted) > 40.0  # |Δμ|² = 6 · 9 = 54
    assert domain_classifier_accuracy(x, shifted, seed=0) > 0.95


def test_pca_keeps_the_main_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5)) * np.array([10.0, 1.0, 0.1, 0.1, 0.1])
    mean, comp = fit_pca(x, 2)
    assert comp.shape == (5, 2)
    assert abs(comp[0, 0]) > 0.99


def test_bench_domain_quick(tmp_path, capsys):
    assert main(["bench", "domain", "--quick", "--out", str(tmp_path)]) == 0
    headline = capsys.readouterr().out.strip().splitlines()[-1]
    assert "raw" in headline and "ours" in headline
    res = json.loads((tmp_path / "domain.json").read_text())
    (pair,) = res["pairs"]
    names = [r["method"] for r in pair["rows"]]
    assert names[:3] == ["raw", "histogram matching", "Reinhard"] and names[3].startswith("ours")
    for r in pair["rows"]:
        assert np.isfinite(r["fd"]) and r["fd"] >= 0 and 0.0 <= r["accuracy"] <= 1.0
    raw = pair["rows"][0]
    # wild vs indoor renders differ clearly: the raw gap is above the split-half noise floor
    assert raw["fd"] > pair["noise_floor"]["fd_synth_halves"]
    assert raw["accuracy"] > 0.7
    assert (tmp_path / "domain.md").read_text().startswith("# Domain gap")
    assert (tmp_path / "domain_bars.png").stat().st_size > 1000
