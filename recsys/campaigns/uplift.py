"""Uplift models on a randomised campaign, and the honest protocol that evaluates them.

Whom to contact so that the message *changes* behaviour: an uplift model estimates, per customer,
``tau(x) = E[Y | treated, x] - E[Y | control, x]`` and customers are targeted by it. Models
(base learners LightGBM with ``n_jobs=1`` or a standardised logistic / ridge model, chosen on validation):

=====================  =====================================================================
``s_learner``          causalml ``BaseSClassifier``/``BaseSRegressor``: one model with the arm as a feature
``t_learner``          causalml ``BaseTClassifier``/``BaseTRegressor``: one model per arm (also the baseline)
``x_learner``          causalml ``BaseXClassifier``/``BaseXRegressor`` with the known randomised propensity
``transformed_outcome``  scikit-uplift ``ClassTransformationReg``: a regressor on ``Z = Y (T-p)/(p(1-p))``
                       (class transformation generalised to any treated share and to money outcomes)
``uplift_forest``      causalml ``UpliftRandomForestClassifier`` (KL criterion), binary outcomes only
=====================  =====================================================================

Baselines measured in the same run: ``random`` targeting, a ``response`` model (LightGBM on the
treated only: "who would buy if treated", what ``socialrec audience`` ranks by), and the T-learner.

Protocol (:func:`run_uplift`), per seed (3 by default):

1. a stratified (arm x outcome>0) split: 70 % train / 30 % test; the train part is split again
   (same strata) into 75 % fit / 25 % validation;
2. each model's hyper-parameters are chosen from a small grid by its Qini coefficient on the
   validation part (fitted on the fit part); the chosen configuration is refitted on all of train;
3. metrics (:mod:`recsys.campaigns.uplift_metrics`) on the untouched test part, with ``n_boot``
   joint Poisson-bootstrap resamples of the customers, shared by all rankings and all seeds (so
   differences are paired and the seeds' overlapping test parts stay correlated);
4. the model used for targeting is the one with the best *validation* Qini; the policy / ROI
   table (:mod:`recsys.campaigns.policy`) picks its contact depth on the validation part and
   reports what it realises on test.

Across seeds: the point value is the mean of the per-seed values; the 95 % CI is the 2.5/97.5
percentile of that mean over the joint resamples (each resample gives every customer one weight,
used in whichever seeds' test parts the customer falls).

Why causalml and scikit-uplift: both are maintained, documented and cited uplift libraries;
causalml has the meta-learners (S/T/X, multi-treatment out of the box) and an uplift forest,
scikit-uplift the class-transformation family and the reference Qini metrics that our weighted
metrics reproduce. Neither computes bootstrap CIs or money outcomes for Qini, which is why the
metrics are ours (tested against scikit-uplift).

Source: Kuenzel, Sekhon, Bickel & Yu (2019), "Metalearners for estimating heterogeneous treatment
effects", PNAS 116(10); Athey & Imbens (2016) (transformed outcome); Rzepakowski & Jaroszewicz
(2012) (uplift trees, KL); Radcliffe (2007) (Qini).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from etl.campaign import CampaignSpec
from etl.errors import EtlInputError
from recsys.campaigns import policy as policy_mod
from recsys.campaigns.uplift_metrics import TOP_FRACTIONS, perfect_qini_area, poisson_weights, ranking_metrics

log = logging.getLogger("socialrec.campaigns.uplift")

UPLIFT_MODELS: tuple[str, ...] = ("s_learner", "t_learner", "x_learner", "transformed_outcome", "uplift_forest")
#: Models that need a binary outcome.
BINARY_ONLY: frozenset[str] = frozenset({"uplift_forest"})
BASELINES: tuple[str, ...] = ("random", "response", "t_learner")
CONTROL_LABEL = "__control__"

#: Base-learner grid (chosen on validation per model and seed): two strongly regularised LightGBM
#: settings and a standardised linear model (logistic / ridge). Uplift is a small difference of two
#: noisy responses, so flexible learners fit noise: on hillstrom the regularised ones win on validation.
LGBM_GRID: tuple[dict, ...] = (
    {"family": "lgbm", "n_estimators": 200, "learning_rate": 0.02, "num_leaves": 5, "min_child_samples": 1000,
     "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8},
    {"family": "lgbm", "n_estimators": 50, "learning_rate": 0.05, "num_leaves": 4, "min_child_samples": 500},
    {"family": "linear", "C": 0.1},
)
FOREST_GRID: tuple[dict, ...] = (
    {"n_estimators": 20, "max_depth": 4, "min_samples_leaf": 1000},
    {"n_estimators": 20, "max_depth": 5, "min_samples_leaf": 500},
)
METRIC_KEYS: tuple[str, ...] = ("qini", "qini_area", "auuc") + tuple(f"uplift@{round(f * 100)}" for f in TOP_FRACTIONS)


# --------------------------------------------------------------------------- features
def design_matrix(frame: pd.DataFrame, spec: CampaignSpec) -> tuple[np.ndarray, list[str]]:
    """Covariates as a dense float matrix.

    Numeric covariates as they are (NaN replaced by the column median, plus a ``<col>_missing``
    0/1 column where any value is missing); categorical ones one-hot over their sorted levels.
    Only covariates are used (never the arm or an outcome), so building it on the whole table
    leaks nothing.

    Returns:
        ``(X (n, d) float64, column names)``.
    """
    parts, names = [], []
    for c in spec.numeric_covariates:
        v = frame[c].to_numpy(dtype=np.float64)
        miss = np.isnan(v)
        if miss.any():
            v = np.where(miss, np.nanmedian(v) if (~miss).any() else 0.0, v)
            parts.append(miss.astype(np.float64)[:, None])
            names.append(f"{c}_missing")
        parts.append(v[:, None])
        names.append(c)
    for c in spec.categorical_covariates:
        levels = sorted(frame[c].astype(str).unique())
        codes = pd.Categorical(frame[c].astype(str), categories=levels).codes
        onehot = np.zeros((len(frame), len(levels)))
        onehot[np.arange(len(frame)), codes] = 1.0
        parts.append(onehot)
        names.extend(f"{c}={lv}" for lv in levels)
    if not parts:
        raise EtlInputError(spec.file, 1, "", "no covariate columns: uplift models need pre-campaign covariates")
    return np.hstack(parts), names


# --------------------------------------------------------------------------- models
def _lgbm(kind: str, params: dict, seed: int):
    """A base learner: LightGBM (``family="lgbm"``, ``n_jobs=1``) or a standardised linear model
    (``family="linear"``: logistic regression with inverse regularisation ``C`` for a binary
    outcome, ridge with ``alpha = 1/C`` for money)."""
    params = dict(params)
    family = params.pop("family", "lgbm")
    if family == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        c = float(params.get("C", 1.0))
        model = LogisticRegression(C=c, max_iter=1000) if kind == "binary" else Ridge(alpha=1.0 / c)
        return make_pipeline(StandardScaler(), model)
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMClassifier if kind == "binary" else LGBMRegressor
    return cls(**params, random_state=seed, n_jobs=1, verbose=-1)


class UpliftModel:
    """One uplift model by name, over a control and K >= 1 treatment arms.

    Args:
        name: one of :data:`UPLIFT_MODELS`.
        kind: ``"binary"`` or ``"money"`` outcome.
        params: base-learner (LightGBM) or forest hyper-parameters.
        seed: random seed.
    """

    def __init__(self, name: str, kind: str, params: dict, seed: int = 0):
        if name not in UPLIFT_MODELS:
            raise ValueError(f"unknown uplift model {name!r}; known: {UPLIFT_MODELS}")
        if name in BINARY_ONLY and kind != "binary":
            raise ValueError(f"{name} needs a binary outcome")
        self.name, self.kind, self.params, self.seed = name, kind, dict(params), seed
        self.treatments: list[str] = []

    def fit(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> "UpliftModel":
        """Fit on rows ``X`` (n, d) with ``arm`` (n,) labels (:data:`CONTROL_LABEL` = control) and
        outcome ``y`` (n,). Propensities are the arms' shares in these rows (randomised: known)."""
        from causalml.inference.meta import (BaseSClassifier, BaseSRegressor, BaseTClassifier, BaseTRegressor,
                                             BaseXClassifier, BaseXRegressor)

        self.treatments = sorted(a for a in set(arm.tolist()) if a != CONTROL_LABEL)
        n_c = int((arm == CONTROL_LABEL).sum())
        self._p = {a: float((arm == a).sum() / ((arm == a).sum() + n_c)) for a in self.treatments}
        binary = self.kind == "binary"
        lg = lambda: _lgbm(self.kind, self.params, self.seed)  # noqa: E731
        if self.name == "s_learner":
            cls = BaseSClassifier if binary else BaseSRegressor
            self._m = cls(learner=lg(), control_name=CONTROL_LABEL)
            self._m.fit(X, arm, y)
        elif self.name == "t_learner":
            cls = BaseTClassifier if binary else BaseTRegressor
            self._m = cls(learner=lg(), control_name=CONTROL_LABEL)
            self._m.fit(X, arm, y)
        elif self.name == "x_learner":
            effect = _lgbm("money", self.params, self.seed)
            if binary:
                self._m = BaseXClassifier(outcome_learner=lg(), effect_learner=effect, control_name=CONTROL_LABEL)
            else:
                self._m = BaseXRegressor(learner=lg(), control_name=CONTROL_LABEL)
            self._m.fit(X, arm, y, p={a: np.full(len(X), p) for a, p in self._p.items()})
        elif self.name == "transformed_outcome":
            from sklift.models import ClassTransformationReg

            self._m = {}
            for a in self.treatments:
                rows = (arm == a) | (arm == CONTROL_LABEL)
                m = ClassTransformationReg(estimator=_lgbm("money", self.params, self.seed), propensity_val=self._p[a])
                self._m[a] = m.fit(X[rows], y[rows], (arm[rows] == a).astype(int))
        else:  # uplift_forest
            from causalml.inference.tree import UpliftRandomForestClassifier

            self._m = UpliftRandomForestClassifier(control_name=CONTROL_LABEL, random_state=self.seed, n_jobs=1,
                                                   evaluationFunction="KL", **self.params)
            self._m.fit(X, arm, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted uplift, (n, K) float64, columns in :attr:`treatments` order."""
        if self.name == "transformed_outcome":
            return np.column_stack([np.asarray(self._m[a].predict(X), dtype=np.float64) for a in self.treatments])
        if self.name == "x_learner":
            raw = self._m.predict(X, p={a: np.full(len(X), p) for a, p in self._p.items()})
        elif self.name == "uplift_forest":
            raw = self._m.predict(X)
            groups = list(self._m.classes_[1:])
            return np.asarray(raw, dtype=np.float64)[:, [groups.index(a) for a in self.treatments]]
        else:
            raw = self._m.predict(X)
        raw = np.asarray(raw, dtype=np.float64).reshape(len(X), -1)
        groups = list(getattr(self._m, "t_groups", self.treatments))
        return raw[:, [groups.index(a) for a in self.treatments]]


class ResponseModel:
    """"Who would buy if treated": a LightGBM model of the outcome fitted on treated rows only."""

    def __init__(self, kind: str, params: dict, seed: int = 0):
        self.kind, self.params, self.seed = kind, dict(params), seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> "ResponseModel":
        self._m = _lgbm(self.kind, self.params, self.seed).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "binary":
            return self._m.predict_proba(X)[:, 1]
        return self._m.predict(X).astype(np.float64)


def _response_loss(kind: str, y: np.ndarray, pred: np.ndarray) -> float:
    if kind == "binary":
        from sklearn.metrics import log_loss

        return float(log_loss(y, np.clip(pred, 1e-6, 1 - 1e-6), labels=[0, 1]))
    return float(np.mean((y - pred) ** 2))


# --------------------------------------------------------------------------- protocol
@dataclass
class SplitIndex:
    """Row indices (into the analysed rows) of one seed's split."""

    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def train(self) -> np.ndarray:
        return np.sort(np.concatenate([self.fit, self.val]))


def stratified_split(arm: np.ndarray, y: np.ndarray, seed: int, test_size: float = 0.3, val_size: float = 0.25) -> SplitIndex:
    """Seeded split stratified by arm x (outcome > 0).

    Args:
        arm: (n,) arm labels. y: (n,) outcome. seed: random seed.
        test_size: share of rows held out for test. val_size: share of the train rows used for validation.
    Returns:
        :class:`SplitIndex` (disjoint, sorted index arrays covering 0..n-1).
    """
    strata = pd.Series(arm).astype(str).to_numpy() + "|" + (np.asarray(y) > 0).astype(int).astype(str)
    idx = np.arange(len(arm))
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    fit, val = train_test_split(train, test_size=val_size, random_state=seed + 1000, stratify=strata[train])
    return SplitIndex(np.sort(fit), np.sort(val), np.sort(test))


def _qini_multi(y, arm, tau, treatments) -> float:
    """Mean over arms of the Qini coefficient of each arm's column on (that arm + control) rows."""
    vals = []
    for k, a in enumerate(treatments):
        rows = (arm == a) | (arm == CONTROL_LABEL)
        vals.append(float(ranking_metrics(y[rows], (arm[rows] == a).astype(float), tau[rows, k])["qini"][0]))
    return float(np.mean(vals))


def _tune(name, kind, X, arm, y, split, seed):
    """Pick ``name``'s configuration on validation; return (params, val Qini per config, val scores)."""
    grid = FOREST_GRID if name == "uplift_forest" else LGBM_GRID
    treatments = sorted(a for a in set(arm.tolist()) if a != CONTROL_LABEL)
    best, scores = None, []
    for params in grid:
        model = UpliftModel(name, kind, params, seed).fit(X[split.fit], arm[split.fit], y[split.fit])
        tau_val = model.predict(X[split.val])
        q = _qini_multi(y[split.val], arm[split.val], tau_val, treatments)
        scores.append(round(q, 5))
        if best is None or q > best[1]:
            best = (params, q, tau_val)
    return best[0], scores, best[2], best[1]


def _summarise(per_seed: list[float], draws: list[np.ndarray]) -> tuple[float, list[float]]:
    """Point = mean over seeds; 95 % CI = percentiles of the seed-mean over the joint resamples.

    ``draws[s][b]`` is seed ``s``'s statistic on joint resample ``b`` (the same customers carry the
    same weight in every seed's test part), so averaging over seeds per resample keeps the
    correlation of overlapping test parts in the interval.
    """
    mean_draws = np.mean(np.stack(draws), axis=0)
    return float(np.mean(per_seed)), [float(np.percentile(mean_draws, 2.5)), float(np.percentile(mean_draws, 97.5))]


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="fit", leave=False)


def prepare(frame: pd.DataFrame, spec: CampaignSpec, treatment: str, outcome: str):
    """Check the request and select rows: (rows mask, arm labels, y, kind, treatments).

    Raises:
        EtlInputError: unknown arm / control chosen as treatment, outcome column missing.
    """
    spec.require_outcome(outcome)
    if treatment == "all":
        treatments = list(spec.treatments)
    else:
        spec.require_arm(treatment)
        treatments = [treatment]
    rows = frame["arm"].isin(treatments + [spec.control]).to_numpy()
    arm = frame.loc[rows, "arm"].to_numpy(dtype=object)
    arm = np.where(arm == spec.control, CONTROL_LABEL, arm).astype(object)
    y = frame.loc[rows, outcome].to_numpy(dtype=np.float64)
    return rows, arm, y, spec.outcome_kind(outcome), treatments


def subsample(frame: pd.DataFrame, max_rows: int | None, seed: int = 0) -> pd.DataFrame:
    """A stratified (by arm) random subsample of at most ``max_rows`` rows (all rows when None)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    keep, _ = train_test_split(np.arange(len(frame)), train_size=max_rows, random_state=seed, stratify=frame["arm"].astype(str))
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


def run_uplift(
    frame: pd.DataFrame,
    spec: CampaignSpec,
    treatment: str,
    outcome: str,
    *,
    models: tuple[str, ...] | None = None,
    seeds: int = 3,
    n_boot: int = 1000,
    cost: float = 0.10,
    margin: float = 0.30,
    top_fraction: float = 0.30,
    value_per_outcome: float | None = None,
    population: int | None = None,
    progress: bool = True,
    keep_curves: bool = True,
) -> dict:
    """Fit, tune and evaluate uplift models and the targeting policy on one campaign.

    Args:
        frame, spec: from :func:`etl.campaign.load_campaign_table`.
        treatment: a treatment arm, or ``"all"`` (every arm: best arm per customer).
        outcome: ``visit``/``conversion``/``spend`` (a column of the table).
        models: subset of :data:`UPLIFT_MODELS` (default all that fit the outcome kind).
        seeds: number of seeded splits (0, 1, ...). n_boot: bootstrap resamples per seed.
        cost: money per contact. margin: profit share of incremental revenue (0..1).
        top_fraction: N of the "top-N" policies, as a share of the customers.
        value_per_outcome: money per incremental unit of ``outcome`` when the table has no
            ``spend`` column (else revenue is the incremental spend).
        population: customers the policy is sized for (default: all customers of the table).
        progress: tqdm bar on stderr. keep_curves: include seed-0 test curves (for the report).
    Returns:
        JSON-ready dict ``{"dataset", "treatment", "outcome", "protocol", "models": {M: {metric,
        metric_ci, metric_seeds, "params", "val_qini"}}, "baselines": {"random", "response",
        "t_learner"}, "comparisons", "selected_model", "policy", "seconds"}`` (metrics: see
        :mod:`recsys.campaigns.uplift_metrics`); plus ``"_curves"`` (not JSON: arrays) when
        ``keep_curves``.
    Raises:
        EtlInputError: unknown arm, missing outcome column, no covariates.
        ValueError: bad numeric arguments.
    """
    started = time.perf_counter()
    if seeds < 1 or n_boot < 10:
        raise ValueError("seeds must be >= 1 and n_boot >= 10")
    if cost < 0 or not 0 <= margin <= 1 or not 0 < top_fraction <= 1:
        raise ValueError("cost must be >= 0, margin in [0, 1], top fraction in (0, 1]")
    rows, arm, y, kind, treatments = prepare(frame, spec, treatment, outcome)
    if treatment == "all":
        from recsys.campaigns.policy import run_best_arm

        return run_best_arm(frame, spec, outcome, models=models, seeds=seeds, n_boot=n_boot, cost=cost, margin=margin,
                            value_per_outcome=value_per_outcome, progress=progress)
    names = tuple(m for m in (models or UPLIFT_MODELS) if not (m in BINARY_ONLY and kind != "binary"))
    unknown = [m for m in names if m not in UPLIFT_MODELS]
    if unknown:
        raise ValueError(f"unknown uplift model(s) {unknown}; known: {UPLIFT_MODELS}")
    if "t_learner" not in names:
        names = names + ("t_learner",)
    X_all, _ = design_matrix(frame, spec)
    X = X_all[rows]
    t01 = (arm != CONTROL_LABEL).astype(np.float64)
    sub = frame.loc[rows]
    outcomes_all = {o: sub[o].to_numpy(dtype=np.float64) for o in spec.outcomes}
    population = int(population or spec.n_customers)

    per_model = {m: {k: [] for k in METRIC_KEYS} for m in names + ("random", "response")}
    draws = {m: {k: [] for k in METRIC_KEYS} for m in per_model}
    diffs: dict[str, list] = {}
    chosen: dict[str, list] = {m: [] for m in names}
    val_q: dict[str, list] = {m: [] for m in names}
    selected: list[str] = []
    policy_seeds = []
    curves_out = {}
    total = seeds * (sum(len(FOREST_GRID if m == "uplift_forest" else LGBM_GRID) + 1 for m in names) + len(LGBM_GRID) + 1)
    bar = _progress(total, progress, f"uplift {outcome}")
    # one Poisson weight per customer and resample, shared by every seed (see _summarise)
    joint_weights = poisson_weights(len(y), n_boot, np.random.default_rng(10_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(seeds):
            split = stratified_split(arm, y, seed)
            tr, te = split.train, split.test
            test_scores, val_scores, val_qini = {}, {}, {}
            for m in names:
                params, grid_q, tau_val, q = _tune(m, kind, X, arm, y, split, seed)
                bar.update(len(FOREST_GRID if m == "uplift_forest" else LGBM_GRID))
                chosen[m].append(params)
                val_q[m].append(grid_q)
                val_scores[m], val_qini[m] = tau_val[:, 0], q
                model = UpliftModel(m, kind, params, seed).fit(X[tr], arm[tr], y[tr])
                test_scores[m] = model.predict(X[te])[:, 0]
                bar.update(1)
            # response model: tuned on validation treated rows by log-loss / MSE
            best = None
            for params in LGBM_GRID:
                fit_t = split.fit[t01[split.fit] == 1]
                val_t = split.val[t01[split.val] == 1]
                r = ResponseModel(kind, params, seed).fit(X[fit_t], y[fit_t])
                loss = _response_loss(kind, y[val_t], r.predict(X[val_t]))
                if best is None or loss < best[1]:
                    best = (params, loss, r.predict(X[split.val]))
                bar.update(1)
            tr_t = tr[t01[tr] == 1]
            response = ResponseModel(kind, best[0], seed).fit(X[tr_t], y[tr_t])
            test_scores["response"] = response.predict(X[te])
            val_scores["response"] = best[2]
            bar.update(1)
            rng = np.random.default_rng(10_000 + seed)
            test_scores["random"] = rng.random(len(te))
            weights = joint_weights[:, te]
            sel = max(names, key=lambda m: val_qini[m])
            selected.append(sel)
            boot = {}
            perfect_pt, perfect_bt = perfect_qini_area(y[te], t01[te]), perfect_qini_area(y[te], t01[te], weights)
            for m, score in test_scores.items():
                point = ranking_metrics(y[te], t01[te], score, perfect_area=perfect_pt)
                boot[m] = ranking_metrics(y[te], t01[te], score, weights, perfect_area=perfect_bt)
                for k in METRIC_KEYS:
                    per_model[m][k].append(float(point[k][0]))
                    draws[m][k].append(boot[m][k])
            for a, b in [(m, "t_learner") for m in names if m != "t_learner"] + [(m, "response") for m in names] + \
                    [(m, "random") for m in names] + [("selected", "t_learner"), ("selected", "response"), ("selected", "random")]:
                key = f"{a}-{b}"
                aa = sel if a == "selected" else a
                pt = per_model[aa]["qini"][-1] - per_model[b]["qini"][-1]
                diffs.setdefault(key, [[], []])
                diffs[key][0].append(pt)
                diffs[key][1].append(boot[aa]["qini"] - boot[b]["qini"])
            policy_seeds.append(policy_mod.evaluate_policies(
                outcomes_val={o: v[split.val] for o, v in outcomes_all.items()},
                t_val=t01[split.val],
                outcomes_test={o: v[te] for o, v in outcomes_all.items()},
                t_test=t01[te],
                uplift_val=val_scores[sel], uplift_test=test_scores[sel],
                response_val=val_scores["response"], response_test=test_scores["response"],
                weights=weights, outcome=outcome, cost=cost, margin=margin, top_fraction=top_fraction,
                value_per_outcome=value_per_outcome, population=population,
            ))
            if seed == 0 and keep_curves:
                curves_out = {"y": y[te], "t": t01[te], "scores": test_scores, "selected": sel}
    bar.close()

    def block(m):
        out = {}
        for k in METRIC_KEYS:
            point, ci = _summarise(per_model[m][k], draws[m][k])
            out[k], out[f"{k}_ci"], out[f"{k}_seeds"] = point, ci, [round(v, 6) for v in per_model[m][k]]
        return out

    result_models = {}
    for m in names:
        result_models[m] = block(m) | {"params": chosen[m], "val_qini": val_q[m]}
    baselines = {"random": block("random"), "response": block("response"), "t_learner": result_models["t_learner"]}
    comparisons = {}
    for key, (pts, ds) in diffs.items():
        point, ci = _summarise(pts, ds)
        comparisons[f"qini:{key}"] = {"diff": point, "ci": ci, "excludes_zero": bool(ci[0] > 0 or ci[1] < 0)}
    sel_name = max(set(selected), key=selected.count)
    sel_block = result_models[sel_name]
    separates = bool(sel_block["qini_ci"][0] > 0)
    pol = policy_mod.summarise_policies(policy_seeds, separates=separates, selected_model=sel_name,
                                        cost=cost, margin=margin, top_fraction=top_fraction, population=population,
                                        outcome=outcome)
    result = {
        "dataset": spec.name,
        "treatment": treatment,
        "control": spec.control,
        "outcome": outcome,
        "protocol": {
            "name": "stratified-70-30x3",
            "definition": "per seed: stratified (arm x outcome>0) 70/30 train/test split; train split 75/25 fit/validation; "
                          "hyper-parameters and the targeting model chosen by validation Qini; metrics on test with "
                          f"{n_boot} joint Poisson-bootstrap resamples of the customers (one weight per customer shared by all seeds); "
                          "point = mean over seeds, CI = 2.5/97.5 % of the seed-mean over the resamples",
            "seeds": list(range(seeds)),
            "n_boot": n_boot,
            "rows": int(rows.sum()),
            "test_rows": int(len(split.test)),
            "candidates": "treated + control customers of the held-out part",
        },
        "models": result_models,
        "baselines": baselines,
        "comparisons": comparisons,
        "selected_model": sel_name,
        "selected_per_seed": selected,
        "separates_from_random": separates,
        "policy": pol,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if keep_curves:
        result["_curves"] = curves_out
    return result


__all__ = ["BASELINES", "UPLIFT_MODELS", "ResponseModel", "UpliftModel", "design_matrix", "prepare", "run_uplift",
           "stratified_split", "subsample"]
