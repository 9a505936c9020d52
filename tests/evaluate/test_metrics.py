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


def test_the_linear_probe_agrees_with_scikit_learn_on_real_digits():
    # the probe minimises scikit-learn's LogisticRegression objective with torch's L-BFGS in float32
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ganops.evaluate.probe import linear_probe

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    tr, te = order[:1400], order[1400:]
    ours = linear_probe(x[tr], y[tr], x[te], y[te])
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x[tr], y[tr])
    assert ours > 0.9 and abs(ours - ref.score(x[te], y[te])) <= 0.01
    labels = y.copy()
    labels[tr[:700]] = -1                                  # unlabelled rows are left out, not class -1
    assert linear_probe(x[tr], labels[tr], x[te], y[te]) > 0.85


def test_one_pass_prdc_equals_torch_fidelity_and_the_prdc_package():
    from prdc import compute_prdc

    real, fake = _gauss(900, 12, 0.0, 1.0, 10), _gauss(1100, 12, 0.2, 1.3, 11)
    both = M.prdc(real, fake, pr_k=3, dc_k=5)
    assert (both["precision"], both["recall"]) == pytest.approx(M.precision_recall(real, fake, k=3), abs=2e-3)
    ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    assert both["density"] == pytest.approx(ref["density"], rel=1e-4)
    assert both["coverage"] == pytest.approx(ref["coverage"], abs=1e-9)
    assert M.prdc(real, real + 100.0) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
