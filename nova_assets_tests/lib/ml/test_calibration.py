import numpy as np

from nova_assets.lib.ml.calibration import apply_calibrator, choose_threshold, fit_calibrator


def test_the_threshold_is_the_lowest_that_reaches_the_target():
    # Sorted by probability: right, right, wrong, right, right, wrong, wrong.
    probability = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 1, 1, 0, 0], dtype=bool)
    assert choose_threshold(probability, correct, 0.8, unmeasured=0.5, min_rows=1) == 0.8
    assert choose_threshold(probability, correct, 1.0, unmeasured=0.5, min_rows=1) == 0.95
    assert choose_threshold(probability, correct, 0.6, unmeasured=0.5, min_rows=1) == 0.7
    # All seven together are right 4 times in 7: at 0.5, nothing needs refusing.
    assert choose_threshold(probability, correct, 0.5, unmeasured=0.5, min_rows=1) == 0.0


def test_tied_probabilities_are_accepted_together():
    probability = np.array([0.9, 0.9, 0.9, 0.5])
    correct = np.array([1, 0, 1, 1], dtype=bool)
    # Two of three right at 0.9: no cut inside the tie can keep only the right ones.
    assert choose_threshold(probability, correct, 0.9, unmeasured=0.5, min_rows=1) == np.inf
    assert choose_threshold(probability, correct, 0.75, unmeasured=0.5, min_rows=1) == 0.0


def test_too_few_answers_say_nothing():
    probability, correct = np.array([0.99, 0.2]), np.array([False, False])
    assert choose_threshold(probability, correct, 0.95, unmeasured=0.95, min_rows=3) == 0.95
    assert choose_threshold(probability, correct, 0.95, unmeasured=0.0, min_rows=3) == 0.0


def test_calibration_learns_the_true_shares_from_overconfident_probabilities():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.choice([1, 2, 3, 4], size=n, p=[0.1, 0.1, 0.2, 0.6])
    # A model that is right 70% of the time but always claims 0.97.
    guess = np.where(rng.random(n) < 0.7, y, rng.choice([1, 2, 3, 4], size=n))
    proba = np.full((n, 4), 0.01)
    proba[np.arange(n), guess - 1] = 0.97
    calibrator = fit_calibrator(proba, y)
    calibrated = apply_calibrator(calibrator, proba)
    assert np.allclose(calibrated.sum(axis=1), 1)
    top = calibrated[np.arange(n), guess - 1]
    assert abs(top.mean() - (guess == y).mean()) < 0.03
    assert fit_calibrator(proba[:10], y[:10]) is None
    assert fit_calibrator(proba, np.full(n, 4)) is None
    assert apply_calibrator(None, proba) is proba


def test_with_assurance_the_precision_must_be_measured_on_enough_answers():
    # 20 answers, all right: precision 1.0, but 20 of 20 does not make 0.95 95 % sure.
    probability = np.linspace(0.99, 0.80, 20)
    correct = np.ones(20, dtype=bool)
    assert choose_threshold(probability, correct, 0.95, unmeasured=0.5) == 0.0
    assert choose_threshold(probability, correct, 0.95, unmeasured=0.5, assurance=0.95) == np.inf
    # 300 answers, the 10 least probable wrong: all of them are 0.967 right, but with a lower
    # bound of 0.940; the assured cut drops some of the wrong ones until the bound is 0.95.
    probability = np.linspace(0.999, 0.5, 300)
    correct = np.r_[np.ones(290, dtype=bool), np.zeros(10, dtype=bool)]
    assert choose_threshold(probability, correct, 0.95, unmeasured=0.5) == 0.0
    assured = choose_threshold(probability, correct, 0.95, unmeasured=0.5, assurance=0.95)
    accepted = probability >= assured
    assert 290 <= accepted.sum() < 300
    assert correct[accepted].mean() > 0.97


def test_a_group_the_calibrator_never_saw_keeps_the_models_probability():
    rng = np.random.default_rng(1)
    y = rng.choice([1, 3, 4], size=600)  # no group 2 among the validation products
    proba = rng.dirichlet(np.ones(4), size=600)
    calibrator = fit_calibrator(proba, y)
    assert list(calibrator.classes_) == [1, 3, 4]
    calibrated = apply_calibrator(calibrator, proba)
    assert np.allclose(calibrated.sum(axis=1), 1)
    assert np.array_equal(calibrated[:, 1], proba[:, 1])
    says_2 = proba.argmax(axis=1) == 1
    assert says_2.any() and (calibrated[says_2, 1] > 0).all()
