"""Model selection: every setting is scored on validation rows with evidence hidden, the mix
weighted like the unlabelled products picks the best, and the chosen model comes back fitted
and calibrated."""

import numpy as np
import pytest

from nova_assets.lib.ml.training import REFERENCE, Calibration, train, validation_scores
from nova_assets.lib.warehouse.split import validation_mask
from nova_assets_tests.lib import synthetic

NO_INGREDIENTS = {"no_ingredients": 0.7, "name_only": 0.3}


@pytest.fixture(scope="module")
def matrix():
    return synthetic.matrix(2500, seed=0)


def test_every_setting_is_a_trial_and_the_mix_picks_the_best(matrix):
    validation = validation_mask(matrix.codes, 20)
    seen = []
    trained = train(
        ["marker_logistic_regression", "evidence_logistic_regression"],
        {"C": [0.3, 1.0], "alpha": [1.0]},
        matrix,
        validation,
        NO_INGREDIENTS,
        on_trial=seen.append,
    )
    assert [(t.kind, t.params) for t in trained.trials] == [
        ("marker_logistic_regression", {"C": 0.3}),
        ("marker_logistic_regression", {"C": 1.0}),
        ("evidence_logistic_regression", {"C": 0.3}),
        ("evidence_logistic_regression", {"C": 1.0}),
        (REFERENCE, {"alpha": 1.0}),
    ]
    assert seen == trained.trials
    assert all(t.validation_rows == validation.sum() for t in trained.trials)
    assert all(t.train_rows == (~validation).sum() for t in trained.trials)
    # Where ingredients are missing, only the evidence model reads the name.
    assert trained.chosen.kind == "evidence_logistic_regression"
    assert trained.chosen.macro_f1 == max(t.macro_f1 for t in trained.trials[:4])
    assert trained.reference_trial.kind == REFERENCE
    # The model comes back calibrated on the validation rows: its scores are the trial's.
    mix, _, per_slice = validation_scores(trained.model, matrix.take(validation), NO_INGREDIENTS)
    assert mix == pytest.approx(trained.chosen.macro_f1)
    assert per_slice == pytest.approx(trained.chosen.slices)
    assert trained.refit_seconds == 0.0 and trained.fit_rows == (~validation).sum()


def test_two_workers_try_the_same_trials_and_choose_the_same_model(matrix):
    """Trials fitted side by side in two processes, refits too: the same scores and choice."""
    validation = validation_mask(matrix.codes, 20)

    def run(workers: int):
        return train(
            ["evidence_logistic_regression"],
            {"C": [1.0], "alpha": [0.1, 1.0]},
            matrix,
            validation,
            NO_INGREDIENTS,
            tuning_rows=len(matrix) // 3,
            workers=workers,
            parallel_rows=0,  # processes even for this small matrix
        )

    one, two = run(1), run(2)
    scores = [(t.kind, t.params, t.macro_f1, t.accuracy, t.slices) for t in one.trials]
    assert [(t.kind, t.params, t.macro_f1, t.accuracy, t.slices) for t in two.trials] == scores
    assert (two.chosen.kind, two.chosen.params) == (one.chosen.kind, one.chosen.params)
    assert two.refit_seconds > 0 and two.fit_rows == one.fit_rows
    held_out = matrix.take(validation)
    mix_two, _, slices_two = validation_scores(two.model, held_out, NO_INGREDIENTS)
    mix_one, _, slices_one = validation_scores(one.model, held_out, NO_INGREDIENTS)
    assert mix_two == pytest.approx(mix_one) and slices_two == pytest.approx(slices_one)
    experts_two = two.model.named_steps["classifier"].experts_  # designs sent through files
    for state, expert in one.model.named_steps["classifier"].experts_.items():
        np.testing.assert_array_equal(experts_two[state].coef_, expert.coef_)


def test_the_weights_decide(matrix):
    """On complete products alone, the marker model is as good as the evidence model, and the
    earlier candidate wins a tie."""
    validation = validation_mask(matrix.codes, 20)
    trained = train(
        ["marker_logistic_regression", "evidence_logistic_regression"],
        {"C": [1.0], "alpha": [1.0]},
        matrix,
        validation,
        {"as_is": 1.0},
    )
    marker, evidence = trained.trials[:2]
    assert marker.slices["as_is"] == evidence.slices["as_is"] == 1.0
    assert trained.chosen is marker


def test_trials_fit_on_at_most_tuning_rows_and_the_winner_on_more(matrix):
    validation = validation_mask(matrix.codes, 20)
    trained = train(
        ["evidence_logistic_regression"],
        {"C": [1.0], "alpha": [1.0]},
        matrix,
        validation,
        NO_INGREDIENTS,
        tuning_rows=300,
        fit_rows=1000,
        validation_rows=200,
        calibration=Calibration(target=0.9),
    )
    assert {t.train_rows for t in trained.trials} == {300}
    assert {t.validation_rows for t in trained.trials} == {200}
    assert trained.refit_seconds > 0
    assert trained.fit_rows == 1000
    classifier = trained.model.named_steps["classifier"]
    assert classifier.precision_target_ == 0.9
    assert sum(len(e.classes_) for e in classifier.experts_.values()) > 0


def test_nothing_to_choose_from_is_an_error(matrix):
    with pytest.raises(ValueError, match="cannot choose a model"):
        train(["marker_logistic_regression"], {"C": [1.0]}, matrix, np.zeros(len(matrix), bool), {})
