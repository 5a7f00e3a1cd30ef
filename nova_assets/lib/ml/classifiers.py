"""The NOVA classifiers: scikit-learn Pipelines from raw products to a calibrated group.

A Pipeline is `products` (a ProductVectorizer holding the tag vocabulary: raw tag lists,
name and flags to a ProductMatrix) then `classifier` (a NovaClassifier). Training fits the
classifier on the ProductMatrix `feature_matrix` already built set-wise in DuckDB, so the
vectorizer only runs for callers that hand in raw products (MLflow serving, `predict`).

A NovaClassifier keeps one expert per evidence state (`evidence.STATES`) when its kind masks
evidence, each trained on every training product with its evidence hidden that way, and reads
tags, OFF's markers, which evidence is present and the product name as character n-grams
(names come in every language). `calibrate` then fits, per state, a calibrator, a floor for
group 1 and per-group thresholds on validation rows, so `predict_proba` is calibrated and
`predict(pipeline, …).confident` says which answers reach the precision target.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from nova_assets.lib.ml import calibration
from nova_assets.lib.ml.candidates import candidate
from nova_assets.lib.ml.cluster import LOCAL, Cluster
from nova_assets.lib.ml.evidence import (
    STATE_SLICE,
    STATES,
    has_evidence,
    hide,
    known_evidence,
    states,
)
from nova_assets.lib.ml.feature_matrix import (
    EVIDENCE,
    ProductMatrix,
    split_feature,
)
from nova_assets.lib.ml.markers import ADDITIVES_IN_INGREDIENTS, Markers
from nova_assets.lib.ml.metrics import present_macro_f1
from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.ml.name_ngrams import NAME_FEATURES
from nova_assets.lib.ml.nutrient_model import fit_nutrient_model, nutrient_scores
from nova_assets.lib.nutrients import NUTRIENT_FEATURES, nutrient_design

GROUPS = calibration.GROUPS
MARKER_SCALE = 4.0
"""The marker columns (OFF's decision, where evidence is complete) enter the design matrix at
this value instead of 1, which lowers their effective L2 penalty sixteenfold: the experts then
follow OFF's rules wherever the markers are there to see, instead of letting thousands of tag
and name weights talk them out of it (on a generated 1 M-row dump, going from 1 to 4 raised
the test macro-F1 of every slice: 0.9999 to 1.0000 as is, 0.978 to 0.992 without
ingredients, 0.960 to 0.971 on names only)."""
NUTRIENT_SCALE = 0.5
"""The nutrient columns' value: up to 15 of them are on per nutrient, against a name's one
unit-length vector."""
TREE_STATES = ("no_categories", "nutrients")
"""The states whose experts read the nutrient trees' answer: products without categories.
Where categories are in sight, the trees' answer made the experts worse on real products of
sources they never saw (bench_model_real.py), as if it stood for what categories say better."""
ALL = "all"
"""The expert key of a kind that does not mask evidence: one expert serves every state."""

# Types in our Pipelines that skops (MLflow's default serialisation) does not trust by itself.
TRUSTED_TYPES = [
    "nova_assets.lib.ml.model_input.ProductVectorizer",
    "nova_assets.lib.ml.classifiers.NovaClassifier",
    "nova_assets.lib.ml.markers.Markers",
    "sklearn.tree._tree.Tree",
    # The nutrient trees' nodes; `load_pipeline` checks every index in them before use.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]
MOVED_MODULES = {
    # Where TRUSTED_TYPES' classes lived before lib/ was split by domain (issue 19): model files
    # registered by that code name these modules, and `load_pipeline` reads them as today's.
    "nova_assets.lib.models": "nova_assets.lib.ml.classifiers",
    "nova_assets.lib.model_input": "nova_assets.lib.ml.model_input",
    "nova_assets.lib.markers": "nova_assets.lib.ml.markers",
}


class NovaClassifier(ClassifierMixin, BaseEstimator):
    """A model kind of CANDIDATES over a ProductMatrix; see the module docstring.

    `params` go to the kind's classifier (e.g. `C`, `alpha`, `max_depth`).
    """

    def __init__(self, kind: str = "evidence_logistic_regression", params: dict | None = None):
        self.kind = kind
        self.params = params

    # -- design matrix -------------------------------------------------------------------
    def _setup(self, features: Sequence[str]) -> None:
        spec = candidate(self.kind)
        self.features_ = list(features)
        self.columns_ = np.array(
            [i for i, f in enumerate(features) if split_feature(f)[0] in spec.families],
            dtype=np.int64,
        )
        self.used_features_ = [self.features_[i] for i in self.columns_]
        self.markers_ = Markers(self.used_features_) if spec.markers else None

    def blocks(self) -> list[tuple[str, int]]:
        """(block, width) of the design matrix, in column order."""
        spec = candidate(self.kind)
        blocks = [("tags", len(self.columns_))]
        if spec.markers:
            blocks += [("markers", len(Markers.columns())), ("highest", len(GROUPS))]
        if spec.masking:
            blocks.append(("evidence", len(EVIDENCE)))
        if spec.names:
            blocks.append(("name", NAME_FEATURES))
        if spec.nutrients:
            blocks += [("nutrients", NUTRIENT_FEATURES), ("nutrient_trees", len(GROUPS))]
        return blocks

    def _tags(self, matrix: ProductMatrix) -> sparse.csr_matrix:
        """The tag columns of the families this kind reads."""
        return matrix.X if len(self.columns_) == matrix.X.shape[1] else matrix.X[:, self.columns_]

    def _design(self, matrix: ProductMatrix, state: str | None = None) -> sparse.csr_matrix:
        """The columns the expert of `state` reads, for products already masked as wanted."""
        spec = candidate(self.kind)
        tags = self._tags(matrix)
        parts = [tags]
        if self.markers_ is not None:
            present = self.markers_.present(tags)
            highest = self.markers_.highest(tags, present)
            one_hot = highest[:, None] == np.array(GROUPS)[None, :]
            parts.append(
                sparse.csr_matrix(MARKER_SCALE * np.hstack([present, one_hot]).astype(np.float32))
            )
        if spec.masking:
            parts.append(sparse.csr_matrix(matrix.evidence.astype(np.float32)))
        if spec.names:
            parts.append(matrix.name_vectors())
        if spec.nutrients:
            trees = self.tree_columns(
                matrix.nutrients,
                matrix.evidence[:, EVIDENCE.index("nutrients")],
                state,
                matrix.nutrient_scores,
            )
            parts += [nutrient_design(matrix.nutrients, NUTRIENT_SCALE), sparse.csr_matrix(trees)]
        return parts[0].tocsr() if len(parts) == 1 else sparse.hstack(parts, format="csr")

    def tree_columns(
        self,
        nutrients: np.ndarray,
        carried: np.ndarray,
        state: str | None,
        out_of_fold: np.ndarray | None = None,
    ) -> np.ndarray:
        """The nutrient trees' answer as the expert of `state` reads it: zero where a product
        does not carry its nutrients as evidence (`carried`) or the state reads no trees
        (TREE_STATES); the training rows' `out_of_fold` answers where given."""
        known = carried & (state in TREE_STATES)
        if out_of_fold is not None:
            return out_of_fold * known[:, None]
        return nutrient_scores(self.nutrient_model_, nutrients, known)

    def _hash_names(self, matrix: ProductMatrix) -> None:
        """Hash the names once, before the matrix is masked and cut into states."""
        if candidate(self.kind).names:
            matrix.name_vectors()

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        matrix: ProductMatrix,
        y: np.ndarray,
        n_jobs: int = 1,
        start: NovaClassifier | None = None,
        cluster: Cluster = LOCAL,
    ) -> NovaClassifier:
        """Fit the kind's classifier, or one expert per evidence state, `n_jobs` of them at a
        time in their own processes (one state's masked rows and design in memory at a time:
        the workers read theirs from files).
        `start`: the same kind fitted on fewer rows (a trial), whose logistic regressions the
        solver starts from: the optimum is the same, it is only reached in fewer steps.
        `cluster`: where the experts are fitted (a Ray cluster's tasks, or this machine's)."""
        spec = candidate(self.kind)
        self._setup(matrix.features)
        self.classes_ = np.array(GROUPS)
        y = np.asarray(y)
        self._hash_names(matrix)
        self.experts_: dict[str, BaseEstimator] = {}
        self.nutrient_model_ = None
        if spec.nutrients:
            self.nutrient_model_, oof = fit_nutrient_model(
                matrix.nutrients, matrix.evidence[:, EVIDENCE.index("nutrients")], y
            )
            matrix = replace(matrix, nutrient_scores=oof)
        if not spec.masking:
            estimator = spec.build(**(self.params or {}))
            self.experts_[ALL] = fit_on_used_columns(
                estimator, self._design(matrix), y, _expert(start, ALL)
            )
        else:
            # Worker processes on this machine get each design from a file: joblib would keep
            # every design it sent in this process until its expert comes back.
            spill = n_jobs > 1 and not cluster.ray_address
            with tempfile.TemporaryDirectory(prefix="nova-designs-") as folder:
                fitted = cluster.map(
                    _fit_expert,
                    (
                        (state, spec.build(**(self.params or {})), X, labels, _expert(start, state))
                        for state, X, labels in self._designs(matrix, y, folder if spill else None)
                    ),
                    max(n_jobs, 1),
                )
                self.experts_ = dict(fitted)
            if not self.experts_:
                raise ValueError("no evidence state has products of two groups to learn from")
        self.calibrators_: dict[str, Any] = {}
        self.precision_target_ = calibration.PRECISION_TARGET
        self.thresholds_ = np.full((len(STATES), len(GROUPS)), calibration.PRECISION_TARGET)
        self.group_1_floor_ = np.zeros(len(STATES))
        self.rules_gate_ = np.zeros((len(STATES), len(GROUPS)), dtype=bool)
        return self

    def _designs(
        self, matrix: ProductMatrix, y: np.ndarray, folder: str | None = None
    ) -> Iterator[tuple[str, sparse.csr_matrix | str, np.ndarray]]:
        """Per state with products of two groups or more: the design its expert fits (saved in
        `folder` and given by its path, if a folder is given), and the labels. One state's rows
        and design at a time: each is let go before the next is built."""
        for _, state, rows, labels in self._state_rows(matrix, y):
            if len(np.unique(labels)) < 2:
                continue
            design = self._design(rows, state)
            del rows
            if folder is not None:
                path = str(Path(folder) / f"{state}.npz")
                sparse.save_npz(path, design, compressed=False)
                design = path
            yield state, design, labels
            del design

    def _state_rows(
        self, matrix: ProductMatrix, y: np.ndarray
    ) -> Iterator[tuple[int, str, ProductMatrix, np.ndarray]]:
        """Per state in turn (one masked copy in memory at a time): its index, name, and the
        products with their evidence hidden by the state's slice, kept where they end up in
        that state (a product without categories is no `complete` example), with their labels.
        Outside the `nutrients` state a fixed half of them have their nutrients hidden too:
        nutrients are an extra there, and an expert must answer products without them.

        The `complete` expert also sees products with their additives hidden where the
        ingredients still show the additives' markers (OFF writes `en:e322` among them): it
        learns that an e-number among the ingredients is an additive's evidence, so a product
        whose additives are missing keeps it, without learning to doubt every product that
        simply has no additive.
        """
        for index, state in enumerate(STATES):
            masked = hide(matrix, STATE_SLICE[state])
            if state != "nutrients":
                masked = _half_without_nutrients(masked)
            keep = np.flatnonzero((states(masked) == index) & has_evidence(masked))
            rows, labels = masked.take(keep), y[keep]
            del masked
            if state == "complete" and self.markers_ is not None:
                hidden = hide(matrix, "no_additives")
                shown = self._additives_shown_in_ingredients(matrix)
                extra = np.flatnonzero(shown & (states(hidden) == index))
                rows = ProductMatrix.concat([rows, hidden.take(extra)])
                labels = np.concatenate([labels, y[extra]])
                del hidden
            yield index, state, rows, labels

    def _additives_shown_in_ingredients(self, matrix: ProductMatrix) -> np.ndarray:
        """Products with additives each of whose marker groups the ingredients show too."""
        present = self.markers_.present(self._tags(matrix))
        columns = Markers.columns()
        additives = [columns.index(("additives", g)) for g in (3, 4)]
        in_ingredients = [columns.index((ADDITIVES_IN_INGREDIENTS, g)) for g in (3, 4)]
        covered = (present[:, additives] <= present[:, in_ingredients]).all(axis=1)
        return covered & matrix.evidence[:, EVIDENCE.index("additives")]

    def calibrate(
        self,
        matrix: ProductMatrix,
        y: np.ndarray,
        target: float = calibration.PRECISION_TARGET,
        group_1_precision: float = calibration.GROUP_1_PRECISION,
    ) -> NovaClassifier:
        """Fit, per evidence state, on rows the experts never trained on (the validation rows)
        with their evidence hidden by the state's slices: a calibrator; the probability of group 1
        below which "unprocessed" is not said (so that `group_1_precision` of such answers are
        right); and the per-group thresholds at which answers reach `target` precision."""
        self.calibrators_ = {}
        self.precision_target_ = float(target)
        self.thresholds_ = np.full((len(STATES), len(GROUPS)), float(target))
        self.group_1_floor_ = np.zeros(len(STATES))
        self.rules_gate_ = np.zeros((len(STATES), len(GROUPS)), dtype=bool)
        self._hash_names(matrix)
        for index, state, masked, masked_y in self._state_rows(matrix, np.asarray(y)):
            rules = self._rules_answer(masked)
            raw = self._raw_proba(masked, np.full(len(masked), index), rules)
            self.calibrators_[state] = calibration.fit_calibrator(raw, masked_y)
            proba = calibration.apply_calibrator(self.calibrators_[state], raw)
            says_1 = raw.argmax(axis=1) == 0
            # Too few group-1 answers to measure: 1 is said where it is at least as likely as not.
            self.group_1_floor_[index] = calibration.choose_threshold(
                proba[says_1, 0], masked_y[says_1] == GROUPS[0], group_1_precision, unmeasured=0.5
            )
            best = self._answers(raw, proba, np.full(len(masked), index))
            if rules is not None and state not in TAGLESS_STATES:
                own = ~masked.corpus
                if state == "complete":
                    # With every evidence in sight OFF's rules are the label: only the dump's
                    # own products can show the experts better, not tags labelled years ago.
                    gate = rules_gate(best[own], rules[own], masked_y[own])
                else:
                    gate = rules_gate(best, rules, masked_y, own)
                self.rules_gate_[index] = gate
                best = self._gated(best, rules, np.full(len(masked), index))
            if state in TAGLESS_STATES:
                # A name's n-grams are the shop's and the language's: validation products of
                # the training shops vouch for them more than other shops' products bear out
                # (right 80-83 % of the time where validation said 95 %, bench_model_real.py).
                self.thresholds_[index] = np.inf
                continue
            probability = proba[np.arange(len(best)), best]
            for g_index in range(len(GROUPS)):
                rows = best == g_index
                # Never below the target itself: an answer is confident when its calibrated
                # probability says so too, not only where validation answers happened to be.
                # A group too rare to measure here is never confident.
                self.thresholds_[index, g_index] = max(
                    target,
                    calibration.choose_threshold(
                        probability[rows],
                        masked_y[rows] == GROUPS[g_index],
                        target,
                        unmeasured=float("inf"),
                        assurance=calibration.ASSURANCE,
                    ),
                )
        return self

    # -- prediction ----------------------------------------------------------------------
    def expert(self, state: str) -> BaseEstimator | None:
        """The fitted estimator that answers products of `state` (None: no training product)."""
        if ALL in self.experts_:
            return self.experts_[ALL]
        return self.experts_.get(state)

    def _rules_answer(self, matrix: ProductMatrix) -> np.ndarray | None:
        """The group OFF's markers in sight give each product (None: a kind without markers)."""
        return None if self.markers_ is None else self.markers_.highest(self._tags(matrix))

    def _raw_proba(
        self, matrix: ProductMatrix, state_index: np.ndarray, rules: np.ndarray | None
    ) -> np.ndarray:
        """Uncalibrated probabilities over GROUPS, each row from its state's expert (a state
        without an expert, for lack of training products, answers every group alike), within
        what OFF's rules (`rules`: `_rules_answer`) allow."""
        proba = np.zeros((len(matrix), len(GROUPS)))
        for index, state in enumerate(STATES):
            rows = np.flatnonzero(state_index == index)
            if len(rows) == 0:
                continue
            expert = self.expert(state)
            if expert is None:
                proba[rows] = 1 / len(GROUPS)
                continue
            design = self._design(matrix.take(rows), state)
            columns = np.searchsorted(GROUPS, expert.classes_)
            proba[np.ix_(rows, columns)] = expert.predict_proba(design)
        if rules is not None:
            proba = rules_floor(proba, rules)
            # OFF's own answer without ingredients: a plain water with no marker is group 1.
            water = (
                self.markers_.plain_water(self._tags(matrix))
                & (state_index == STATES.index("no_ingredients"))
                & (rules == GROUPS[0])
            )
            proba[water] = np.eye(len(GROUPS))[0]
        return proba

    def _answers(self, raw: np.ndarray, proba: np.ndarray, state_index: np.ndarray) -> np.ndarray:
        """Column in GROUPS of each answer: the experts' most probable group, except group 1
        under its state's floor, which gives way to the next group."""
        best = raw.argmax(axis=1)
        floor = self.group_1_floor_[state_index]
        doubtful = (best == 0) & (proba[:, 0] < floor)
        if doubtful.any():
            best[doubtful] = raw[doubtful, 1:].argmax(axis=1) + 1
        return best

    def _gated(self, best: np.ndarray, rules: np.ndarray, state_index: np.ndarray) -> np.ndarray:
        """The answers (columns in GROUPS), with OFF's rules' answer wherever the gate of the
        product's state leaves the rules' group to the rules (see `rules_gate`)."""
        return np.where(self.rules_gate_[state_index, rules - 1], rules - 1, best)

    def answer(self, matrix: ProductMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(column in GROUPS of each answer, calibrated probabilities, evidence states)."""
        state_index = states(matrix)
        rules = self._rules_answer(matrix)
        raw, proba = self._scores(matrix, state_index, rules)
        best = self._answers(raw, proba, state_index)
        if rules is not None:
            best = self._gated(best, rules, state_index)
        return best, proba, state_index

    def scores(self, matrix: ProductMatrix) -> tuple[np.ndarray, np.ndarray]:
        """(the experts' probabilities, the calibrated ones), both over GROUPS.

        The experts' argmax is the answer: trained with groups weighed by rarity, it keeps the
        rare groups 1 and 2 in reach. The calibrated probability of that answer says how sure it
        is; calibration learns the true group shares, so its own argmax would favour group 4.
        """
        return self._scores(matrix, states(matrix), self._rules_answer(matrix))

    def _scores(
        self, matrix: ProductMatrix, state_index: np.ndarray, rules: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        self._hash_names(matrix)
        raw = self._raw_proba(matrix, state_index, rules)
        proba = raw.copy()
        for index, state in enumerate(STATES):
            rows = np.flatnonzero(state_index == index)
            if len(rows) and self.calibrators_.get(state) is not None:
                proba[rows] = calibration.apply_calibrator(self.calibrators_[state], raw[rows])
        return raw, proba

    def predict_proba(self, matrix: ProductMatrix) -> np.ndarray:
        """Calibrated probabilities over GROUPS (columns 1, 2, 3, 4)."""
        return self.scores(matrix)[1]

    def predict(self, matrix: ProductMatrix) -> np.ndarray:
        return np.array(GROUPS, dtype=np.int8)[self.answer(matrix)[0]]


@dataclass(frozen=True)
class Prediction:
    """What a model says of a batch of products."""

    groups: np.ndarray
    probability: np.ndarray
    confident: np.ndarray


def predict(pipeline: Pipeline, matrix: ProductMatrix) -> Prediction:
    """Group, calibrated probability and confidence for products already in the pipeline's
    vocabulary (a ProductMatrix over the same features). An answer made from no known evidence
    (`known_evidence`) is never confident, whatever its probability."""
    classifier: NovaClassifier = pipeline.named_steps["classifier"]
    best, proba, state_index = classifier.answer(matrix)
    probability = proba[np.arange(len(best)), best]
    return Prediction(
        groups=np.array(GROUPS, dtype=np.int8)[best],
        probability=probability,
        confident=(probability >= classifier.thresholds_[state_index, best])
        & known_evidence(matrix),
    )


def _half_without_nutrients(matrix: ProductMatrix, seed: int = 0) -> ProductMatrix:
    """`matrix` with the nutrients of a fixed random half of its products hidden."""
    drop = np.random.default_rng(seed).random(len(matrix)) < 0.5
    if not matrix.evidence[drop, EVIDENCE.index("nutrients")].any():
        return matrix
    nutrients = matrix.nutrients.copy()
    nutrients[drop] = np.nan
    evidence = matrix.evidence.copy()
    evidence[drop, EVIDENCE.index("nutrients")] = False
    return replace(matrix, nutrients=nutrients, evidence=evidence)


TAGLESS_STATES = ("nutrients", "name_only")
"""States whose products carry no tag: OFF's rules read nothing there, so they do not answer."""
MIN_GATE_ROWS = 30
"""Validation rows a (state, rules' answer) cell needs before the experts may answer there
instead of OFF's rules."""
GATE_MARGIN = 0.005
"""How much higher the experts' validation macro-F1 must be for them to answer instead."""


def rules_gate(
    best: np.ndarray, rules: np.ndarray, y: np.ndarray, own: np.ndarray | None = None
) -> np.ndarray:
    """Per group g (as OFF's rules answer it on the evidence left): whether the rows where the
    rules say g take the rules' answer. The rules answer by default; each group in turn, the
    experts take over only where the validation rows (`best`: the experts' answers, columns in
    GROUPS) are enough to measure (MIN_GATE_ROWS) and give them a macro-F1 higher by
    GATE_MARGIN: the model departs from OFF's rules only where it was measured to do better
    than them, in the figure it is judged by.

    `own`: the dump's own rows, beside a corpus of other sources'. Where some are in the
    group, the experts must beat the rules by the margin on them too, however few: they are
    the products the model answers for, and a corpus whose tags OFF labelled long ago can find
    the experts better than rules that are exact on today's tags."""
    gate = np.zeros(len(GROUPS), dtype=bool)
    groups = np.asarray(GROUPS)
    answers = groups[best]
    own = np.ones(len(y), dtype=bool) if own is None else own
    for k, group in enumerate(GROUPS):
        rows = rules == group
        if not rows.any():
            gate[k] = True  # nothing measured: the rules answer
            continue
        ruled = answers.copy()
        ruled[rows] = group
        wins = rows.sum() >= MIN_GATE_ROWS and present_macro_f1(y, answers) >= (
            present_macro_f1(y, ruled) + GATE_MARGIN
        )
        if not wins or (
            (rows & own).any()
            and present_macro_f1(y[own], answers[own])
            < present_macro_f1(y[own], ruled[own]) + GATE_MARGIN
        ):
            gate[k] = True
            answers = ruled
    return gate


RULED_OUT = {
    2: (1, 3),
    3: (1,),
}
"""Groups OFF's rules exclude, given the group the markers in sight give: evidence that is
hidden can only add markers, and a marker only raises the group (except that group 3 never
overrides group 2). So a product whose markers say 3 is not 1, and one whose categories say
2 is 2 or, with a group-4 marker unseen, 4."""


def rules_floor(proba: np.ndarray, highest: np.ndarray) -> np.ndarray:
    """Probabilities over GROUPS with the groups OFF's rules rule out set to zero (rows
    renormalised), and the answer 4 where a group-4 marker is in sight: OFF's algorithm lets
    nothing override one."""
    proba = proba.copy()
    for group, excluded in RULED_OUT.items():
        rows = highest == group
        allowed = proba[rows]
        allowed[:, [GROUPS.index(g) for g in excluded]] = 0.0
        # Where the expert gave every allowed group nothing, the rules' own group remains.
        allowed[allowed.sum(axis=1) == 0, GROUPS.index(group)] = 1.0
        proba[rows] = allowed / allowed.sum(axis=1, keepdims=True)
    proba[highest == GROUPS[-1]] = np.eye(len(GROUPS))[-1]
    return proba


def _expert(fitted: NovaClassifier | None, state: str) -> BaseEstimator | None:
    return None if fitted is None else fitted.experts_.get(state)


def _fit_expert(
    state: str,
    estimator: BaseEstimator,
    X: sparse.csr_matrix | str,
    y: np.ndarray,
    start: BaseEstimator | None = None,
) -> tuple[str, BaseEstimator]:
    """One expert fitted on its design (or the design saved at that path)."""
    design = sparse.load_npz(X).tocsr() if isinstance(X, str) else X
    return state, fit_on_used_columns(estimator, design, y, start)


def fit_on_used_columns(
    estimator: BaseEstimator,
    X: sparse.csr_matrix,
    y: np.ndarray,
    start: BaseEstimator | None = None,
) -> BaseEstimator:
    """A logistic regression fitted on the columns some row uses, its coefficients put back in
    place, zero elsewhere (where the L2 penalty puts them anyway): L-BFGS then works on the used
    columns only, not on every hashed name bucket (4 x 133 k coefficients). Given `start`, a
    logistic regression over the same columns and groups, the solver starts from its
    coefficients. Other estimators are fitted as they are."""
    if not isinstance(estimator, LogisticRegression):
        return estimator.fit(X, y)
    used = np.flatnonzero(X.getnnz(axis=0))
    compress = 0 < len(used) < X.shape[1]
    groups = np.unique(y)
    if (
        isinstance(start, LogisticRegression)
        and start.coef_.shape == (len(groups), X.shape[1])
        and np.array_equal(start.classes_, groups)
    ):
        estimator.set_params(warm_start=True)
        estimator.coef_ = start.coef_[:, used] if compress else start.coef_.copy()
        estimator.intercept_ = start.intercept_.copy()
    if not compress:
        return estimator.fit(X, y)
    estimator.fit(X.tocsc()[:, used].tocsr(), y)
    coef = np.zeros((estimator.coef_.shape[0], X.shape[1]))
    coef[:, used] = estimator.coef_
    estimator.coef_ = coef
    estimator.n_features_in_ = X.shape[1]
    return estimator


def fit_pipeline(
    kind: str,
    matrix: ProductMatrix,
    y: np.ndarray,
    n_jobs: int = 1,
    start: Pipeline | None = None,
    cluster: Cluster = LOCAL,
    **params,
) -> Pipeline:
    """Fit one of CANDIDATES on the ProductMatrix and wrap it with its vectorizer; `n_jobs`
    experts at a time, from `start`'s coefficients if given (see NovaClassifier.fit)."""
    candidate(kind)
    first = None if start is None else start.named_steps["classifier"]
    classifier = NovaClassifier(kind, params).fit(
        matrix, y, n_jobs=n_jobs, start=first, cluster=cluster
    )
    return Pipeline(
        [
            ("products", ProductVectorizer(matrix.features, refuse_unknown=True).fit()),
            ("classifier", classifier),
        ]
    )
