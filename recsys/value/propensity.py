"""Who will be high value next period: LightGBM on point-in-time features, against simple baselines.

Design (a temporal holdout; no feature sees anything after its cut date):

* A *cut* c is a date. The customers at c are those whose first transaction is on or before c.
  Their features use transactions, interactions, influence and follow edges known at c only.
* Point-in-time follow graph (:func:`follows_at`): an edge with a timestamp counts at c when its
  timestamp is on or before c. Follow edges without a timestamp (ciao's trust network and
  lastfm's friendships carry none; the snapshot keeps none) count at c only when *both ends were
  active* (first interaction or transaction) on or before c: an approximation, since an edge
  between two users active before c may still have been made after c, but it removes the leak of
  edges to users who did not exist yet (measured on ciao before this rule: positives had ~5.9
  followees first active after the cut, negatives 0.02).
* The label at c: the customer's value in the next period (c, c + H] is in the top
  ``1 - high_value_quantile`` of the customers at c (ties included; at least one unit of value).
* Cuts: ``c_eval = end - H`` (the evaluation cut, labels up to ``end``) and training cuts
  ``c_eval - k H`` for k = 1..K.
  - Evaluation model: fitted on k >= 2, early-stopped (AUC) on the validation cut k = 1, its
    probability calibrated on k = 1 (isotonic regression, scikit-learn), evaluated once on
    ``c_eval`` (k = 0), a cut neither the trees nor the calibrator saw.
  - Served model: the same design shifted one period: trees fitted on k = 1..K (the evaluation
    model's number of trees), calibrator fitted on k = 0, scoring the customers at ``end``.
* Class imbalance (about 5 % positives on ciao): positives are weighted by n_neg / n_pos
  (``scale_pos_weight``); the F1 threshold is chosen on the validation cut; the served
  ``propensity`` is the isotonic-calibrated probability (which also undoes the weighting).
* Baselines, on the same cut and the same customers, F1 thresholds chosen on the validation cut
  the same way: ``recency`` (fewer weeks since the last transaction ranks higher),
  ``value_52w`` (value in the last 52 weeks), ``bgnbd`` (E[Y(H)] (FHL 2005 eq. 10) x Gamma-Gamma
  E[M], fitted at the cut). The model is reported better than the baselines only when its AUC
  beats the *best* baseline's and the 95 % paired-bootstrap interval of the difference excludes
  0 (``comparison``). All of it overall and on the recently active (>= 1 transaction in the 52
  weeks before the cut).
* Ablation ``no_graph``: the same design without the graph features (:data:`GRAPH_FEATURES`).
* Churn risk: P(no transaction in (c, c + H]) from BG/NBD, 1 - P(active), isotonic-calibrated
  the same way (calibrator on k = 1 for the evaluation, on k = 0 for serving).
* Calibration report (:func:`calibration_report`): Brier score, expected calibration error on 10
  equal-mass bins, mean predicted vs base rate, the reliability table.
* Explanations: per customer, the top contributions of LightGBM's exact TreeSHAP values
  (``pred_contrib=True``, log-odds of the uncalibrated score); globally, permutation importance
  (AUC drop on the evaluation cut, ``sklearn.inspection.permutation_importance``).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.inspection import permutation_importance
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import f1_score, roc_auc_score

from graph.snapshot import Snapshot
from recsys.value.clv import BetaGeoModel, GammaGammaModel
from recsys.value.influence import InfluenceGraph, learn_influence, pagerank
from recsys.value.rfm import calibration_summary

FEATURES: tuple[str, ...] = (
    "recency_weeks", "frequency", "tenure_weeks", "monetary_value", "total_value",
    "tx_days_4w", "tx_days_13w", "tx_days_52w", "value_52w",
    "n_categories", "category_entropy", "mean_interaction_value",
    "followers", "followees", "pagerank", "followees_active_13w", "followee_tx_days_13w",
    "followers_active_13w", "influence", "propagations",
    "bgnbd_expected", "p_alive", "expected_value_per_tx",
)
#: Features computed from the follow graph (dropped by the ``no_graph`` ablation).
GRAPH_FEATURES: tuple[str, ...] = (
    "followers", "followees", "pagerank", "followees_active_13w", "followee_tx_days_13w",
    "followers_active_13w", "influence", "propagations",
)
WEEK = pd.Timedelta(days=7)


@dataclass
class CutState:
    """Everything known at one cut date.

    Attributes:
        cut: the cut (inclusive last day).
        summary: RFM calibration summary indexed by user row index (customers at the cut).
        bgnbd, gamma_gamma: models fitted on the summary (None when they could not be fitted).
        influence: influence learned from actions up to the cut.
        features: frame indexed by user row index with :data:`FEATURES`.
        baseline: (n,) BG/NBD expected value in (cut, cut + H], aligned with ``features``.
        churn: (n,) uncalibrated BG/NBD 1 - P(active in (cut, cut + H]) (NaN without BG/NBD).
        follows_at_cut: follow edges known at the cut (:func:`follows_at`).
    """

    cut: pd.Timestamp
    summary: pd.DataFrame
    bgnbd: BetaGeoModel | None
    gamma_gamma: GammaGammaModel | None
    influence: InfluenceGraph
    features: pd.DataFrame
    baseline: np.ndarray
    churn: np.ndarray | None = None
    follows_at_cut: int = 0


def first_activity(snapshot: Snapshot, transactions: pd.DataFrame | None = None) -> np.ndarray:
    """(n_users,) float64 Unix seconds of each user's first interaction or transaction; inf if none."""
    ts = snapshot.timestamps.tocsr()
    first = np.full(snapshot.n_users, np.inf)
    coo = ts.tocoo()
    ok = np.isfinite(coo.data)
    np.minimum.at(first, coo.row[ok], coo.data[ok])
    if transactions is not None and len(transactions):
        idx = np.array([snapshot.user_index(u) for u in transactions["customer_id"]], dtype=object)
        known = np.array([i is not None for i in idx], dtype=bool)
        if known.any():
            secs = pd.to_datetime(transactions["date"]).to_numpy("datetime64[s]").astype(np.float64)
            np.minimum.at(first, idx[known].astype(np.int64), secs[known])
    return first


def follows_at(
    snapshot: Snapshot,
    until: float,
    first_seen: np.ndarray,
    follow_timestamps: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    """The follow graph as known at a cut (module docstring, "point-in-time follow graph").

    Args:
        snapshot: the snapshot (``follows``).
        until: the cut as Unix seconds, exclusive (the day after the cut's day, 00:00).
        first_seen: (n_users,) Unix seconds of each user's first activity
            (:func:`first_activity`), inf for never active.
        follow_timestamps: optional (n, n) CSR with the follows' pattern, Unix seconds of each
            edge's creation (NaN unknown). Dated edges count when ``ts < until``; undated ones
            by the both-ends-active rule.
    Returns:
        (n, n) float32 CSR, a subset of ``snapshot.follows``.
    """
    fol = snapshot.follows.tocoo()
    active = first_seen < until
    keep = active[fol.row] & active[fol.col]
    if follow_timestamps is not None:
        fts = sp.csr_matrix(follow_timestamps).tocoo()
        dated = pd.Series(fts.data, index=pd.MultiIndex.from_arrays([fts.row, fts.col]))
        edge_ts = dated.reindex(pd.MultiIndex.from_arrays([fol.row, fol.col])).to_numpy(np.float64)
        has = np.isfinite(edge_ts)
        keep = np.where(has, edge_ts < until, keep)
    out = sp.csr_matrix((fol.data[keep], (fol.row[keep], fol.col[keep])), shape=fol.shape, dtype=np.float32)
    out.sort_indices()
    return out


def fit_value_models(summary: pd.DataFrame, penalizer: float = 1e-3) -> tuple[BetaGeoModel | None, GammaGammaModel | None]:
    """BG/NBD and Gamma-Gamma on a calibration summary; None for a model the data cannot support.

    The small L2 penalty keeps fits on sparse interaction data off degenerate corners (e.g. a
    drifting to infinity); CDNOW validation uses the plain MLE.
    """
    bg = gg = None
    if len(summary) >= 10 and (summary["frequency"] > 0).any():
        bg = BetaGeoModel(penalizer=penalizer).fit(summary["frequency"], summary["recency"], summary["T"])
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(rep) >= 10 and rep["monetary_value"].nunique() > 1:
        gg = GammaGammaModel(penalizer=penalizer).fit(rep["frequency"], rep["monetary_value"])
    return bg, gg


def expected_value_per_transaction(summary: pd.DataFrame, gg: GammaGammaModel | None) -> np.ndarray:
    """Gamma-Gamma E[M | x, z-bar]; without a model, the customer's own mean value per transaction."""
    if gg is not None:
        return gg.conditional_expected_value(summary["frequency"], summary["monetary_value"])
    return (summary["total_value"] / (summary["frequency"] + 1.0)).to_numpy(dtype=np.float64)


def _entropy(counts: sp.csr_matrix) -> np.ndarray:
    totals = np.asarray(counts.sum(axis=1)).ravel()
    out = np.zeros(counts.shape[0])
    coo = counts.tocoo()
    p = coo.data / totals[coo.row]
    np.add.at(out, coo.row, -p * np.log(p))
    return out


def build_cut(
    snapshot: Snapshot,
    transactions: pd.DataFrame,
    cut: pd.Timestamp,
    horizon_weeks: float,
    tau_days: float = 30.0,
    penalizer: float = 1e-3,
    pagerank_scores: np.ndarray | None = None,
    z_margin: float = 1.645,
    first_seen: np.ndarray | None = None,
    follow_timestamps: sp.csr_matrix | None = None,
) -> CutState:
    """Features of the customers at ``cut`` (module docstring).

    Args:
        snapshot: the snapshot (categories, follows, interaction values).
        transactions: value transaction frame with ``customer_id`` = snapshot user ids.
        cut: the cut date (inclusive).
        horizon_weeks: H, for the BG/NBD features.
        tau_days: influence window.
        penalizer: value-model L2 penalty.
        pagerank_scores: (n_users,) precomputed PageRank of the point-in-time follow graph at
            this cut (default: computed here).
        z_margin: influence significance margin (:func:`recsys.value.influence.learn_influence`).
        first_seen: (n_users,) first activity per user (:func:`first_activity`; default:
            computed from the snapshot and ``transactions``).
        follow_timestamps: optional dated follow edges (:func:`follows_at`).
    Returns:
        :class:`CutState`.
    Raises:
        ValueError: no customer has a transaction on or before the cut.
    """
    cut = pd.Timestamp(cut).floor("D")
    summary = calibration_summary(transactions, cut)
    if summary.empty:
        raise ValueError(f"no transactions on or before {cut.date()}")
    rows = np.array([snapshot.user_index(u) for u in summary.index], dtype=np.int64)
    summary = summary.set_axis(pd.Index(rows, name="user"))
    bg, gg = fit_value_models(summary, penalizer)
    feats = pd.DataFrame(index=summary.index)
    feats["recency_weeks"] = summary["T"] - summary["recency"]
    feats["frequency"] = summary["frequency"]
    feats["tenure_weeks"] = summary["T"]
    feats["monetary_value"] = summary["monetary_value"]
    feats["total_value"] = summary["total_value"]

    tx_days = transactions.assign(day=pd.to_datetime(transactions["date"]).dt.floor("D"))
    tx_days = tx_days[tx_days["day"] <= cut].groupby(["customer_id", "day"])["value"].sum().reset_index()
    tx_days["user"] = np.array([snapshot.user_index(u) for u in tx_days["customer_id"]], dtype=np.int64)
    n = snapshot.n_users
    windows = {}
    for weeks in (4, 13, 52):
        recent = tx_days[tx_days["day"] > cut - weeks * WEEK]
        windows[weeks] = (np.bincount(recent["user"], minlength=n).astype(np.float64),
                          np.bincount(recent["user"], weights=recent["value"], minlength=n))
        feats[f"tx_days_{weeks}w"] = windows[weeks][0][feats.index]
    feats["value_52w"] = windows[52][1][feats.index]
    days13 = windows[13][0]
    active13 = (days13 > 0).astype(np.float64)

    # Categories and interaction values from the snapshot's interactions up to the cut.
    ts = snapshot.timestamps.tocsr()
    until = (cut + pd.Timedelta(days=1)).timestamp()
    keep = np.isfinite(ts.data) & (ts.data < until)
    coo = ts.tocoo()
    u_idx, i_idx = coo.row[keep], coo.col[keep]
    inter = snapshot.interactions.tocsr()
    vals = np.asarray(inter[u_idx, i_idx]).ravel() if u_idx.size else np.zeros(0)
    cnt = np.bincount(u_idx, minlength=n).astype(np.float64)
    feats["mean_interaction_value"] = np.divide(np.bincount(u_idx, weights=vals, minlength=n), cnt,
                                                out=np.zeros(n), where=cnt > 0)[feats.index]
    n_cat = len(snapshot.categories)
    cats = snapshot.item_category[i_idx] if u_idx.size else np.zeros(0, np.int64)
    ok = cats >= 0
    if n_cat and ok.any():
        uc = sp.csr_matrix((np.ones(ok.sum()), (u_idx[ok], cats[ok])), shape=(n, n_cat))
        uc.sum_duplicates()
        feats["n_categories"] = np.diff(uc.indptr)[feats.index].astype(np.float64)
        feats["category_entropy"] = _entropy(uc)[feats.index]
    else:
        feats["n_categories"] = 0.0
        feats["category_entropy"] = 0.0

    if first_seen is None:
        first_seen = first_activity(snapshot, transactions)
    fol = follows_at(snapshot, until, first_seen, follow_timestamps)
    feats["followers"] = np.asarray(fol.sum(axis=0)).ravel()[feats.index]
    feats["followees"] = np.asarray(fol.sum(axis=1)).ravel()[feats.index]
    pr = pagerank(fol) if pagerank_scores is None else pagerank_scores
    feats["pagerank"] = pr[feats.index]
    feats["followees_active_13w"] = (fol @ active13)[feats.index]
    feats["followee_tx_days_13w"] = (fol @ days13)[feats.index]
    feats["followers_active_13w"] = (fol.T @ active13)[feats.index]
    at_cut = dataclasses.replace(snapshot, follows=fol)  # influence learned on the edges known at the cut
    influence = learn_influence(at_cut, tau_days=tau_days, z_margin=z_margin, until=until - 1.0)
    feats["influence"] = influence.influence[feats.index]
    feats["propagations"] = influence.propagations[feats.index]

    value_per_tx = expected_value_per_transaction(summary, gg)
    if bg is not None:
        expected = bg.conditional_expected_transactions(horizon_weeks, summary["frequency"], summary["recency"], summary["T"])
        feats["bgnbd_expected"] = expected
        feats["p_alive"] = bg.p_alive(summary["frequency"], summary["recency"], summary["T"])
    else:
        expected = feats["tx_days_52w"].to_numpy() * horizon_weeks / 52.0  # naive run-rate
        feats["bgnbd_expected"] = expected
        feats["p_alive"] = np.nan
    feats["expected_value_per_tx"] = value_per_tx
    feats = feats[list(FEATURES)].astype(np.float64)
    churn = np.full(len(summary), np.nan)
    if bg is not None:
        churn = 1.0 - bg.p_active(horizon_weeks, summary["frequency"], summary["recency"], summary["T"])
    return CutState(cut=cut, summary=summary, bgnbd=bg, gamma_gamma=gg, influence=influence,
                    features=feats, baseline=np.asarray(expected) * value_per_tx, churn=np.asarray(churn),
                    follows_at_cut=int(fol.nnz))


def next_period_value(transactions: pd.DataFrame, snapshot: Snapshot, cut: pd.Timestamp,
                      horizon_weeks: float, users: pd.Index) -> np.ndarray:
    """Value of each user in ``users`` (row indices) in (cut, cut + H]. Returns (len(users),) float64."""
    dates = pd.to_datetime(transactions["date"]).dt.floor("D")
    window = transactions[(dates > cut) & (dates <= cut + horizon_weeks * WEEK)]
    idx = np.array([snapshot.user_index(u) for u in window["customer_id"]], dtype=np.int64)
    total = np.bincount(idx, weights=window["value"].to_numpy(np.float64), minlength=snapshot.n_users)
    return total[np.asarray(users)]


def high_value_labels(values: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
    """Label = value >= max(quantile of values, smallest positive value). Returns (labels int, threshold)."""
    positive = values[values > 0]
    if positive.size == 0:
        return np.zeros(values.shape[0], dtype=np.int64), float("inf")
    threshold = max(float(np.quantile(values, quantile)), float(positive.min()))
    return (values >= threshold).astype(np.int64), threshold


def _best_f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (predict positive when score >= t) maximising F1 on (y, score)."""
    order = np.argsort(-score, kind="stable")
    s, yy = score[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, len(yy) + 1)
    f1 = 2 * tp / (k + yy.sum())
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold can only sit between distinct scores
    f1 = np.where(last_of_tie, f1, -1.0)
    return float(s[int(np.argmax(f1))])


def classification_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """AUC, F1 at ``threshold``, precision in the top decile (ranked by score), base rate."""
    y = np.asarray(y)
    n_top = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-score, kind="stable")[:n_top]
    pred = (score >= threshold).astype(np.int64)
    return {
        "auc": float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None,
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision_at_top_decile": float(y[top].mean()),
        "threshold": float(threshold),
        "flagged": int(pred.sum()),
    }


@dataclass
class PropensityResult:
    """The fitted high-value-next-period model and its temporal evaluation.

    Attributes:
        model: the final classifier (trained through ``end``).
        metrics: ``{"model", "baselines", "comparison", "ablation", "calibration",
            "recently_active", ...}`` (see :func:`fit_propensity`).
        permutation_importance: frame ``feature``, ``importance_mean``, ``importance_std``
            (AUC drop on the evaluation cut), sorted.
        current: :class:`CutState` at ``end`` (the customers scored now).
        propensity: (n_current,) calibrated P(high value next period) for ``current``.
        explanations: list (n_current) of top-3 SHAP contributions
            ``[{"feature", "value", "contribution"}]`` (log-odds).
        evaluation: frame of the evaluation cut (``user``, ``y``, ``score``, ``baseline``).
        states: every :class:`CutState` built, by cut.
        churn_risk: (n_current,) calibrated P(no transaction next period), or None when BG/NBD
            could not be fitted at the cuts.
    """

    model: lgb.LGBMClassifier
    metrics: dict
    permutation_importance: pd.DataFrame
    current: CutState
    propensity: np.ndarray
    explanations: list
    evaluation: pd.DataFrame
    states: dict = field(default_factory=dict)
    churn_risk: np.ndarray | None = None


def _classifier(pos_weight: float, seed: int, n_estimators: int) -> lgb.LGBMClassifier:
    # One thread: the data are small, and OpenMP threads on a shared, loaded machine slow
    # LightGBM down by an order of magnitude (measured: 2 ms vs 55 ms per tree on ciao).
    return lgb.LGBMClassifier(
        n_estimators=n_estimators, learning_rate=0.03, num_leaves=15, min_child_samples=40,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
        scale_pos_weight=pos_weight, random_state=seed, n_jobs=1, deterministic=True,
        force_col_wise=True, verbose=-1,
    )


def calibration_report(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict:
    """Calibration of probabilities ``p`` against outcomes ``y``.

    Args:
        y: (n,) 0/1 outcomes.
        p: (n,) predicted probabilities in [0, 1].
        n_bins: equal-mass bins (customers sorted by p, split into ``n_bins`` groups of
            nearly equal size).
    Returns:
        ``{"ece", "brier", "mean_predicted", "base_rate", "mean_relative_error" (mean predicted /
        base rate - 1), "mean_within_10pct", "customers", "bins": [{"bin", "customers",
        "mean_predicted", "observed"}]}``. ECE = sum_b n_b / n |mean p_b - mean y_b|.
    Raises:
        ValueError: empty input or shapes differ.
    Source: ECE as in Naeini, Cooper & Hauskrecht (AAAI 2015) with equal-mass bins
        (Nixon et al., CVPR-W 2019 "adaptive" binning); Brier (1950).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError("calibration_report needs non-empty y and p of the same shape")
    order = np.argsort(p, kind="stable")
    bins = []
    ece = 0.0
    for b, part in enumerate(np.array_split(order, min(n_bins, y.size))):
        mp, my = float(p[part].mean()), float(y[part].mean())
        ece += part.size / y.size * abs(mp - my)
        bins.append({"bin": b + 1, "customers": int(part.size), "mean_predicted": mp, "observed": my})
    base = float(y.mean())
    mean_p = float(p.mean())
    rel = mean_p / base - 1.0 if base > 0 else float("nan")
    return {"ece": float(ece), "brier": float(np.mean((p - y) ** 2)), "mean_predicted": mean_p, "base_rate": base,
            "mean_relative_error": rel, "mean_within_10pct": bool(abs(rel) <= 0.10) if base > 0 else False,
            "customers": int(y.size), "n_bins": int(len(bins)), "binning": "equal-mass", "bins": bins}


def _isotonic(score: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same customers with a 95 % paired-bootstrap interval.

    Args:
        y: (n,) 0/1 labels. a, b: (n,) scores (higher = more likely positive).
        n_boot: bootstrap resamples of customers (seeded). seed: the RNG seed.
    Returns:
        ``{"difference", "ci95": [lo, hi], "n_boot"}`` (percentile interval; resamples with a
        single class are skipped).
    """
    y = np.asarray(y)
    diff = float(roc_auc_score(y, a) - roc_auc_score(y, b))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        i = rng.integers(0, y.size, y.size)
        if 0 < y[i].sum() < y.size:
            out.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    lo, hi = (np.percentile(out, [2.5, 97.5]) if out else (float("nan"), float("nan")))
    return {"difference": diff, "ci95": [float(lo), float(hi)], "n_boot": int(len(out))}


def _comparison(y: np.ndarray, model_score: np.ndarray, baselines: dict[str, np.ndarray], seed: int) -> dict:
    """The model against the best baseline by AUC on (y, scores): difference, CI, verdict."""
    aucs = {k: float(roc_auc_score(y, v)) for k, v in baselines.items()}
    best = max(aucs, key=aucs.get)
    d = paired_auc_difference(y, model_score, baselines[best], seed=seed)
    better = bool(d["difference"] > 0 and d["ci95"][0] > 0)
    return {"best_baseline": best, "best_baseline_auc": aucs[best], "model_auc": float(roc_auc_score(y, model_score)),
            "auc_gain": d["difference"], "auc_gain_ci95": d["ci95"], "model_better": better,
            "verdict": (f"model beats the best baseline ({best}) by {d['difference']:+.3f} AUC "
                        f"(95 % CI {d['ci95'][0]:+.3f} .. {d['ci95'][1]:+.3f})" if better else
                        f"model does not beat the best baseline ({best}): AUC difference {d['difference']:+.3f} "
                        f"(95 % CI {d['ci95'][0]:+.3f} .. {d['ci95'][1]:+.3f})")}


def _baseline_scores(state: "CutState") -> dict[str, np.ndarray]:
    f = state.features
    return {"recency": -f["recency_weeks"].to_numpy(np.float64), "value_52w": f["value_52w"].to_numpy(np.float64),
            "bgnbd": np.asarray(state.baseline, dtype=np.float64)}


def _fit_early_stopped(X_fit, y_fit, X_val, y_val, seed: int) -> tuple[lgb.LGBMClassifier, int]:
    w = (len(y_fit) - y_fit.sum()) / y_fit.sum()
    model = _classifier(w, seed, 2000)
    # lightgbm >= 4.6 names the validation data eval_X/eval_y; older versions take eval_set.
    if "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters:
        eval_kw = {"eval_X": (X_val,), "eval_y": (y_val,)}
    else:
        eval_kw = {"eval_set": [(X_val, y_val)]}
    model.fit(X_fit, y_fit, eval_metric="auc",
              callbacks=[lgb.early_stopping(100, first_metric_only=True, verbose=False)], **eval_kw)
    n_trees = int(max(model.best_iteration_ or 0, 20))
    return model, n_trees


def fit_propensity(
    snapshot: Snapshot,
    transactions: pd.DataFrame,
    end: pd.Timestamp | None = None,
    horizon_weeks: float = 52.0,
    n_train_cuts: int = 3,
    high_value_quantile: float = 0.95,
    tau_days: float = 30.0,
    seed: int = 0,
    penalizer: float = 1e-3,
    importance_repeats: int = 5,
    z_margin: float = 1.645,
    follow_timestamps: sp.csr_matrix | None = None,
) -> PropensityResult:
    """Fit and evaluate the high-value-next-period model (module docstring).

    Args:
        snapshot: the snapshot.
        transactions: value transaction frame (``customer_id`` = user id, ``date``, ``value``).
        end: last day of data, the observation end (default: the latest transaction date).
        horizon_weeks: H, the next period's length.
        n_train_cuts: K >= 2 training cuts before the evaluation cut.
        high_value_quantile: the label's quantile (0.95 = top 5 %).
        tau_days: influence window.
        seed: LightGBM / bootstrap seed.
        penalizer: value-model L2 penalty.
        importance_repeats: permutation-importance repeats.
        z_margin: influence significance margin.
        follow_timestamps: optional dated follow edges (:func:`follows_at`).
    Returns:
        :class:`PropensityResult`; ``metrics`` holds ``model``, ``baselines`` (``recency``,
        ``value_52w``, ``bgnbd``), ``comparison``, ``ablation`` (``no_graph``),
        ``calibration`` (``propensity`` and ``churn_risk``), each also under
        ``recently_active`` where both classes occur there.
    Raises:
        ValueError: n_train_cuts < 2, or too little history for the cuts (each needs customers and
            both classes).
    """
    if n_train_cuts < 2:
        raise ValueError("n_train_cuts must be >= 2 (one to fit, one to validate)")
    dates = pd.to_datetime(transactions["date"])
    end = (pd.Timestamp(end) if end is not None else dates.max()).floor("D")
    H = horizon_weeks * WEEK
    c_eval = end - H
    first_seen = first_activity(snapshot, transactions)
    states: dict = {}

    def labelled(k: int):
        cut = c_eval - k * H
        state = build_cut(snapshot, transactions, cut, horizon_weeks, tau_days, penalizer, None, z_margin,
                          first_seen=first_seen, follow_timestamps=follow_timestamps)
        states[cut] = state
        values = next_period_value(transactions, snapshot, cut, horizon_weeks, state.features.index)
        y, thr = high_value_labels(values, high_value_quantile)
        if y.sum() == 0 or y.sum() == len(y):
            raise ValueError(f"cut {cut.date()}: the label has a single class; use fewer/shorter cuts")
        return state, y, thr, (values <= 0).astype(np.int64)

    data = {k: labelled(k) for k in range(0, n_train_cuts + 1)}
    no_graph = [f for f in FEATURES if f not in GRAPH_FEATURES]

    def stack(ks, cols=FEATURES):
        X = pd.concat([data[k][0].features[list(cols)] for k in ks], ignore_index=True)
        y = np.concatenate([data[k][1] for k in ks])
        return X, y

    # Evaluation design: trees on k >= 2, early stopping + calibration + thresholds on k = 1.
    X_fit, y_fit = stack(range(2, n_train_cuts + 1))
    state_v, y_val = data[1][0], data[1][1]
    X_val = state_v.features
    m_eval, n_trees = _fit_early_stopped(X_fit, y_fit, X_val, y_val, seed)
    raw_val = m_eval.predict_proba(X_val)[:, 1]
    iso_eval = _isotonic(raw_val, y_val)
    thr_model = _best_f1_threshold(y_val, raw_val)
    base_val = _baseline_scores(state_v)
    thr_base = {k: _best_f1_threshold(y_val, v) for k, v in base_val.items()}

    Xg_fit, _ = stack(range(2, n_train_cuts + 1), no_graph)
    m_ng, n_trees_ng = _fit_early_stopped(Xg_fit, y_fit, X_val[no_graph], y_val, seed)
    thr_ng = _best_f1_threshold(y_val, m_ng.predict_proba(X_val[no_graph])[:, 1])

    state_e, y_e, label_thr, churned_e = data[0]
    score_e = m_eval.predict_proba(state_e.features)[:, 1]
    prob_e = iso_eval.predict(score_e)
    ng_e = m_ng.predict_proba(state_e.features[no_graph])[:, 1]
    base_e = _baseline_scores(state_e)

    def block(mask: np.ndarray) -> dict:
        y = y_e[mask]
        out = {
            "customers": int(mask.sum()),
            "base_rate": float(y.mean()),
            "model": classification_metrics(y, score_e[mask], thr_model),
            "baselines": {k: classification_metrics(y, v[mask], thr_base[k]) for k, v in base_e.items()},
        }
        out["bgnbd_baseline"] = out["baselines"]["bgnbd"]
        out["comparison"] = _comparison(y, score_e[mask], {k: v[mask] for k, v in base_e.items()}, seed)
        ng = classification_metrics(y, ng_e[mask], thr_ng)
        ng["auc_difference_vs_model"] = paired_auc_difference(y, score_e[mask], ng_e[mask], seed=seed)
        out["ablation"] = {"no_graph": ng}
        out["calibration"] = {"propensity": calibration_report(y, prob_e[mask])}
        return out

    everyone = np.ones(len(y_e), dtype=bool)
    metrics = {
        "evaluation_cut": str(state_e.cut.date()),
        "validation_cut": str(state_v.cut.date()),
        "horizon_weeks": float(horizon_weeks),
        "training_cuts": [str(data[k][0].cut.date()) for k in range(2, n_train_cuts + 1)],
        "protocol": ("temporal: trees fitted on the training cuts, early stopping, F1 thresholds and isotonic "
                     "calibration on the validation cut, every figure on the evaluation cut (labels up to the "
                     "observation end); candidates = all customers with a transaction on or before the cut"),
        "label": f"next-{horizon_weeks:g}-week value >= {label_thr:g} (top {100 * (1 - high_value_quantile):g} %)",
        "positives": int(y_e.sum()),
        "n_trees": n_trees,
        "n_trees_no_graph": n_trees_ng,
        "graph_features": list(GRAPH_FEATURES),
        "follow_graph": ("point-in-time: dated edges when ts <= cut; undated edges only when both ends were "
                         "active on or before the cut"),
        "follows_at_cut": {str(s.cut.date()): int(s.follows_at_cut) for s in (data[k][0] for k in sorted(data))},
        **block(everyone),
    }
    recent = state_e.features["tx_days_52w"].to_numpy() > 0
    if recent.any() and 0 < y_e[recent].sum() < recent.sum():
        metrics["recently_active"] = {"definition": ">= 1 transaction in the 52 weeks before the cut", **block(recent)}

    # Churn risk: BG/NBD 1 - P(active), isotonic-calibrated on the validation cut, checked on the evaluation cut.
    churn_cal = None
    if state_v.churn is not None and np.isfinite(state_v.churn).all() and state_e.churn is not None \
            and np.isfinite(state_e.churn).all():
        churned_v = data[1][3]
        iso_churn_eval = _isotonic(state_v.churn, churned_v)
        churn_e = iso_churn_eval.predict(state_e.churn)
        metrics["calibration"]["churn_risk"] = {
            **calibration_report(churned_e, churn_e),
            "uncalibrated": {k: v for k, v in calibration_report(churned_e, state_e.churn).items() if k != "bins"},
        }
        if "recently_active" in metrics and 0 < churned_e[recent].sum() < recent.sum():
            metrics["recently_active"]["calibration"]["churn_risk"] = calibration_report(churned_e[recent], churn_e[recent])
        churn_cal = _isotonic(state_e.churn, churned_e)  # served: calibrated on k = 0
    metrics["calibration"]["propensity"]["uncalibrated_prior_corrected"] = {
        k: v for k, v in calibration_report(y_e, _prior_corrected(score_e, (len(y_fit) - y_fit.sum()) / y_fit.sum())).items()
        if k != "bins"}
    metrics["calibration"]["method"] = ("isotonic regression (sklearn.isotonic.IsotonicRegression) fitted on the "
                                        f"validation cut {state_v.cut.date()}, evaluated on {state_e.cut.date()}; "
                                        f"the served calibrator is refitted on {state_e.cut.date()}")

    pi = permutation_importance(m_eval, state_e.features, y_e, scoring="roc_auc",
                                n_repeats=importance_repeats, random_state=seed, n_jobs=1)
    importance = pd.DataFrame({"feature": list(FEATURES), "importance_mean": pi.importances_mean,
                               "importance_std": pi.importances_std})
    importance = importance.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)

    # Served model: trees on k = 1..K, calibrator on k = 0, scores at the observation end.
    X_tr, y_tr = stack(range(1, n_train_cuts + 1))
    w_tr = (len(y_tr) - y_tr.sum()) / y_tr.sum()
    final = _classifier(w_tr, seed, n_trees).fit(X_tr, y_tr)
    iso_final = _isotonic(final.predict_proba(state_e.features)[:, 1], y_e)
    current = build_cut(snapshot, transactions, end, horizon_weeks, tau_days, penalizer, None, z_margin,
                        first_seen=first_seen, follow_timestamps=follow_timestamps)
    states[end] = current
    propensity = iso_final.predict(final.predict_proba(current.features)[:, 1])
    churn_now = None
    if churn_cal is not None and current.churn is not None and np.isfinite(current.churn).all():
        churn_now = churn_cal.predict(current.churn)
    contrib = final.predict(current.features, pred_contrib=True)
    explanations = explain(contrib, current.features)
    evaluation = pd.DataFrame({"user": state_e.features.index, "y": y_e, "score": score_e, "probability": prob_e,
                               "baseline": base_e["bgnbd"]})
    return PropensityResult(model=final, metrics=metrics, permutation_importance=importance, current=current,
                            propensity=propensity, explanations=explanations, evaluation=evaluation, states=states,
                            churn_risk=churn_now)


def _prior_corrected(s: np.ndarray, w: float) -> np.ndarray:
    """Undo positive weighting w of a score s (Elkan 2001): s / (s + w (1 - s))."""
    return s / (s + w * (1.0 - s))


def explain(contrib: np.ndarray, features: pd.DataFrame, top: int = 3) -> list:
    """Top-``top`` SHAP contributions per row.

    Args:
        contrib: (n, n_features + 1) LightGBM ``pred_contrib`` output (last column = bias).
        features: (n, n_features) the rows explained.
        top: contributions kept per row, by absolute size.
    Returns:
        list of n lists of ``{"feature", "value", "contribution"}`` (contribution in log-odds,
        positive = raises the chance of high value).
    """
    names = list(features.columns)
    values = features.to_numpy()
    c = np.asarray(contrib)[:, : len(names)]
    order = np.argsort(-np.abs(c), axis=1, kind="stable")[:, :top]
    return [
        [{"feature": names[j], "value": float(values[i, j]), "contribution": float(c[i, j])} for j in order[i]]
        for i in range(c.shape[0])
    ]
