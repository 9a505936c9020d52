"""Distribution metrics with known answers: they measure what their papers define."""

import numpy as np
import pytest

from ganops.evaluate import metrics as M


def _gauss(n: int, d: int, mean: float, std: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, (n, d))


def test_fid_of_a_set_against_itself_is_zero():
    x = _gauss(2000, 16, 0.0, 1.0, 0)
    assert abs(M.fid(x, x)) < 1e-6


def test_fid_of_two_gaussians_matches_the_closed_form():
    d, (m1, s1), (m2, s2) = 8, (0.0, 1.0), (0.5, 2.0)
    real, fake = _gauss(40000, d, m1, s1, 1), _gauss(40000, d, m2, s2, 2)
    # ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) with isotropic Σ = s²I
    closed = d * (m1 - m2) ** 2 + d * (s1 - s2) ** 2
    assert M.fid(real, fake) == pytest.approx(closed, rel=0.03)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    a, b = _gauss(2000, 16, 0.0, 1.0, 3), _gauss(2000, 16, 0.0, 1.0, 4)
    mean, std = M.kid(a, b, subsets=50, subset_size=500)
    assert abs(mean) < 3 * std + 1e-4          # unbiased: zero within its spread
    shifted, _ = M.kid(a, _gauss(2000, 16, 0.5, 1.0, 5), subsets=50, subset_size=500)
    assert shifted > 10 * std


def test_precision_recall_density_coverage_on_toy_sets():
    real = _gauss(1000, 4, 0.0, 1.0, 6)
    assert M.precision_recall(real, real.copy()) == pytest.approx((1.0, 1.0))
    density, coverage = M.density_coverage(real, real.copy())
    assert coverage == 1.0 and density == pytest.approx(1.0, abs=0.15)
    far = real + 100.0                          # nothing generated lies near the real data
    assert M.precision_recall(real, far) == (0.0, 0.0)
    assert M.density_coverage(real, far) == (0.0, 0.0)
    # mode collapse: all fakes on one real sample -> full precision, almost no recall or coverage
    collapsed = np.repeat(real[:1], 1000, axis=0) + 1e-6 * _gauss(1000, 4, 0, 1, 7)
    precision, recall = M.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.05
    assert M.density_coverage(real, collapsed)[1] < 0.05


def test_density_and_coverage_agree_with_the_prdc_package():
    from prdc import compute_prdc

    real, fake = _gauss(800, 10, 0.0, 1.0, 8), _gauss(700, 10, 0.3, 1.2, 9)
    ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    density, coverage = M.density_coverage(real, fake, k=5)
    assert density == pytest.approx(ref["density"], rel=1e-4)
    assert coverage == pytest.approx(ref["coverage"], abs=1e-9)
    precision, recall = M.precision_recall(real, fake, k=5)
    assert precision == pytest.approx(ref["precision"], abs=0.01) and recall == pytest.approx(ref["recall"], abs=0.01)
