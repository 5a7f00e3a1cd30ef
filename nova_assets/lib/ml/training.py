"""Choosing and fitting the model: every candidate setting fitted on the training rows outside
a validation carve-out, calibrated and scored there on the slices (evidence hidden as in
deployment) weighted like the unlabelled products; the best refitted on all of them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from nova_assets.lib.markdown import table
from nova_assets.lib.ml.calibration import GROUP_1_PRECISION, PRECISION_TARGET
from nova_assets.lib.ml.candidates import parameter_grid
from nova_assets.lib.ml.classifiers import fit_pipeline, predict
from nova_assets.lib.ml.cluster import LOCAL, Cluster, where
from nova_assets.lib.ml.evidence import SLICES, slice_rows
from nova_assets.lib.ml.feature_matrix import ProductMatrix
from nova_assets.lib.ml.metrics import present_macro_f1

REFERENCE = "reference_bernoulli_nb"
PARALLEL_ROWS = 10_000
"""Below this many tuning rows the fits take less than starting worker processes does."""


@dataclass(frozen=True)
class Trial:
    """One candidate with one set of hyperparameters, scored on the validation rows: the mix of
    slices (weighted like the unlabelled products) and each slice's macro-F1."""

    kind: str
    params: dict[str, Any]
    macro_f1: float
    accuracy: float
    slices: dict[str, float]
    fit_seconds: float
    train_rows: int
    validation_rows: int
    ran_on: str = "local"
    """`ray` when a Ray worker fitted it, `local` for this machine."""


@dataclass(frozen=True)
class Calibration:
    """What confidence means: the precision accepted answers reach, and group 1's."""

    target: float = PRECISION_TARGET
    group_1_precision: float = GROUP_1_PRECISION


@dataclass
class Trained:
    """The chosen model and the reference, fitted and calibrated, with every trial."""

    model: Pipeline
    reference: Pipeline
    chosen: Trial
    reference_trial: Trial
    trials: list[Trial] = field(default_factory=list)
    refit_seconds: float = 0.0
    fit_rows: int = 0
    """How many rows the model was fitted on (the trials' own, or a refit's)."""


def validation_scores(
    pipeline: Pipeline, validation: ProductMatrix, weights: Mapping[str, float]
) -> tuple[float, float, dict[str, float]]:
    """(mix macro-F1, mix accuracy, macro-F1 per slice) on the validation rows."""
    per_slice, accuracy = {}, {}
    for name in SLICES:
        rows = slice_rows(validation, name)
        answers = predict(pipeline, rows).groups
        per_slice[name] = present_macro_f1(rows.labels, answers) if len(rows) else 0.0
        accuracy[name] = float(np.mean(answers == rows.labels)) if len(rows) else 0.0
    total = sum(weights.get(n, 0.0) for n in SLICES) or 1.0

    def mixed(values: dict[str, float]) -> float:
        return sum(weights.get(n, 0.0) * v for n, v in values.items()) / total

    return mixed(per_slice), mixed(accuracy), per_slice


def _fit(
    kind: str,
    params: dict[str, Any],
    fit_rows: ProductMatrix,
    validation: ProductMatrix,
    calibration: Calibration,
    n_jobs: int = 1,
    start: Pipeline | None = None,
    cluster: Cluster = LOCAL,
) -> tuple[Pipeline, float]:
    began = time.perf_counter()
    pipeline = fit_pipeline(
        kind, fit_rows, fit_rows.labels, n_jobs=n_jobs, start=start, cluster=cluster, **params
    )
    seconds = time.perf_counter() - began
    pipeline.named_steps["classifier"].calibrate(
        validation, validation.labels, calibration.target, calibration.group_1_precision
    )
    return pipeline, seconds


def _trial(
    kind: str,
    params: dict[str, Any],
    tuning: ProductMatrix,
    held_out: ProductMatrix,
    weights: Mapping[str, float],
    calibration: Calibration,
) -> tuple[Trial, Pipeline]:
    """One setting fitted on `tuning`, calibrated and scored on `held_out`."""
    pipeline, seconds = _fit(kind, params, tuning, held_out, calibration)
    macro_f1, accuracy, per_slice = validation_scores(pipeline, held_out, weights)
    trial = Trial(
        kind, params, macro_f1, accuracy, per_slice, seconds, len(tuning), len(held_out), where()
    )
    return trial, pipeline


def train(
    candidates: Sequence[str],
    grids: dict[str, Sequence[Any]],
    matrix: ProductMatrix,
    validation: np.ndarray,
    weights: Mapping[str, float],
    *,
    tuning_rows: int | None = None,
    fit_rows: int | None = None,
    validation_rows: int | None = None,
    calibration: Calibration = Calibration(),
    on_trial: Callable[[Trial], None] | None = None,
    workers: int = 1,
    parallel_rows: int = PARALLEL_ROWS,
    cluster: Cluster = LOCAL,
) -> Trained:
    """Fit every candidate (and the reference) setting on the rows outside `validation` (at
    most `tuning_rows` of them, a fixed random subset), calibrate and score it on `validation`
    (at most `validation_rows` of them), and keep the best candidate and the best reference,
    refitted on the non-validation rows (at most `fit_rows`, a larger random subset) when the
    trials saw fewer. `workers` processes fit the trials side by side (each fit uses one core),
    then the refit's experts, once there are `parallel_rows` tuning rows; on `cluster`, if it
    names a Ray cluster, they run as its tasks instead. The trials, and so the choice, are the
    same for any number of workers and either way."""
    fit_index = np.flatnonzero(~validation)
    validation_index = np.flatnonzero(validation)
    if len(validation_index) == 0 or len(np.unique(matrix.labels[fit_index])) < 2:
        raise ValueError(
            f"cannot choose a model: {len(fit_index)} training and {len(validation_index)} "
            "validation rows, and at least two groups are needed"
        )
    fit_index = _subset(fit_index, fit_rows)
    tuning_index = _subset(fit_index, tuning_rows)
    validation_index = _subset(validation_index, validation_rows)
    capped = len(tuning_index) < len(fit_index)
    tuning = matrix.take(tuning_index)
    held_out = matrix.take(validation_index)
    if len(tuning) < parallel_rows and not cluster.ray_address:
        workers = 1
    settings = [
        (kind, params)
        for kind in dict.fromkeys([*candidates, REFERENCE])
        for params in parameter_grid(kind, grids)
    ]
    done = cluster.map(
        _trial,
        [(kind, params, tuning, held_out, weights, calibration) for kind, params in settings],
        min(max(workers, 1), len(settings)),
        shared=(tuning, held_out),
    )
    trials: list[Trial] = []
    best: dict[str, tuple[Trial, Pipeline]] = {}
    for trial, pipeline in done:
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        kind = trial.kind
        if kind not in best or _rank(trial) > _rank(best[kind][0]):
            best[kind] = (trial, pipeline)
    chosen = max((best[k][0] for k in candidates), key=_rank)
    model, reference = best[chosen.kind][1], best[REFERENCE][1]
    refit_seconds = 0.0
    if capped:
        del tuning
        everything = matrix.take(fit_index)
        # The chosen kind's experts share the workers, starting from the trial's solution;
        # the reference is one quick fit.
        model, refit_seconds = _fit(
            chosen.kind, chosen.params, everything, held_out, calibration, workers, model, cluster
        )
        reference, _ = _fit(REFERENCE, best[REFERENCE][0].params, everything, held_out, calibration)
    return Trained(
        model, reference, chosen, best[REFERENCE][0], trials, refit_seconds, len(fit_index)
    )


def _subset(rows: np.ndarray, at_most: int | None) -> np.ndarray:
    """At most `at_most` of `rows`: a fixed random subset, in order."""
    if at_most is None or len(rows) <= at_most:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, at_most, replace=False))


def _rank(trial: Trial) -> tuple[float, float]:
    """Higher mix macro-F1, then accuracy; the earlier (cheaper) trial wins ties."""
    return (trial.macro_f1, trial.accuracy)


def trials_table(trained: Trained) -> str:
    """Every trial as a Markdown table, the chosen one marked."""
    slices = list(trained.chosen.slices)
    rows = [
        [
            t.kind + (" **(chosen)**" if t is trained.chosen else ""),
            json.dumps(t.params),
            f"{t.macro_f1:.4f}",
            f"{t.accuracy:.4f}",
            *(f"{t.slices[s]:.3f}" for s in slices),
            f"{t.fit_seconds:.1f}",
        ]
        for t in trained.trials
    ]
    header = ["candidate", "params", "mix macro-F1", "mix accuracy", *slices, "fit s"]
    return "\n".join(table(header, rows)) + "\n"
