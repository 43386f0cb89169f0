"""Customer value end to end: one entry point, :func:`compute_customer_value`, and its write-back.

Per user it produces (``CustomerValueResult.users``, snapshot row order):

=================  =====================================================================
``clv``            discounted expected value over ``horizon_weeks`` (BG/NBD x Gamma-Gamma),
                   in ``value_unit``; 0 for users with no transaction
``influence``      behavioural influence: expected followers adopting because of the user,
                   per action (:mod:`recsys.value.influence`); the weighted-cascade sum in
                   the no-timestamp fallback
``pagerank``       structural influence on the follow graph (sums to 1)
``weighted_value`` clv + sum over followers of p_infl(v, u) * clv(u), in ``value_unit``
``segment_id``     follow-graph community (:mod:`recsys.value.segments`)
``rfm_segment``    classic RFM segment (:mod:`recsys.value.rfm`); ``no_transactions`` if none
``churn_risk``     P(no transaction in the next ``horizon_weeks``) = 1 - P(active)
``p_alive``        BG/NBD P(alive) (1 for customers without a repeat transaction, by the model)
``propensity``     P(high value next period) from the LightGBM model (prior-corrected)
``explanation``    top SHAP contributions of that prediction: [{feature, value, contribution}]
=================  =====================================================================

Value unit: a shop export with prices passes ``transactions`` (money; ``value_unit`` names the
currency). Datasets without prices (ciao, epinions, lastfm-hetrec2011) measure value in
*interactions*: every timestamped interaction is one unit, so CLV is the expected number of
future interactions (discounted). Without any timestamp (BG/NBD needs dates) CLV falls back to
the user's historical interaction count, churn risk and P(alive) are NaN and no propensity
model is fitted; the fallback is recorded in ``metrics["clv"]["method"]``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.value.clv import BetaGeoModel, customer_lifetime_value
from recsys.value.influence import InfluenceGraph, influence_weighted_value, learn_influence, pagerank
from recsys.value.propensity import (
    CutState,
    PropensityResult,
    build_cut,
    expected_value_per_transaction,
    fit_propensity,
    next_period_value,
)
from recsys.value.rfm import rfm_scores, snapshot_transactions
from recsys.value.segments import follow_communities, profile_segments

log = logging.getLogger(__name__)
MONTH_WEEKS = 52.0 / 12.0
USER_COLUMNS = (
    "user_id", "clv", "influence", "pagerank", "weighted_value", "segment_id", "rfm_segment",
    "churn_risk", "p_alive", "propensity", "explanation",
)


@dataclass
class CustomerValueResult:
    """The output of :func:`compute_customer_value`.

    Attributes:
        dataset: dataset name.
        value_unit: ``"interactions"`` or the currency/money unit of the transactions.
        users: per-user frame (module docstring) plus ``frequency``, ``recency``, ``T``,
            ``monetary_value``, ``value_per_transaction``, ``expected_transactions``,
            ``p_active``, ``followers``, ``followees``, ``assignment`` (segment rule).
        segments: per-segment profile (:func:`recsys.value.segments.profile_segments`).
        metrics: CLV fit and holdout check, propensity evaluation, influence statistics,
            modularity, counts.
        calibration: holdout check by decile of predicted value (``decile``, ``customers``,
            ``predicted_mean``, ``actual_mean``).
        importance: permutation importance of the propensity model (may be empty).
        influence_probabilities: (n, n) CSR [v, u] = p_infl(v, u) for cascades (audiences).
    """

    dataset: str
    value_unit: str
    users: pd.DataFrame
    segments: pd.DataFrame
    metrics: dict
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    influence_probabilities: sp.csr_matrix | None = None
    _index: dict = field(default=None, repr=False)  # type: ignore[assignment]

    def user(self, user_id: str) -> dict | None:
        """The value record of one (pseudonymised) user id, or None when unknown."""
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.users["user_id"])}
        i = self._index.get(user_id)
        if i is None:
            return None
        row = self.users.iloc[i]
        return {k: _jsonable(row[k]) for k in self.users.columns}

    def segment(self, segment_id: str) -> dict | None:
        """The profile of one segment, or None when unknown."""
        hit = self.segments[self.segments["segment_id"] == segment_id]
        if hit.empty:
            return None
        return {k: _jsonable(v) for k, v in hit.iloc[0].items()}

    def bgnbd(self) -> BetaGeoModel | None:
        """The BG/NBD model behind ``clv`` (rebuilt from its parameters), or None in the fallback."""
        params = self.metrics.get("clv", {}).get("bgnbd")
        return BetaGeoModel(params=dict(params)) if params else None


def _jsonable(value):
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def normalise_transactions(transactions: pd.DataFrame) -> pd.DataFrame:
    """A shop's transactions as the value frame ``customer_id``, ``date``, ``value``.

    Args:
        transactions: columns ``user_id`` or ``customer_id`` (pseudonymised, as in the snapshot);
            ``ts`` (Unix seconds) or ``date``; ``value`` or ``amount`` (money per transaction).
    Returns:
        Frame ``customer_id`` (str), ``date`` (datetime64[ns]), ``value`` (float64).
    Raises:
        KeyError: a required column is missing.
    """
    cid = "customer_id" if "customer_id" in transactions else "user_id"
    if cid not in transactions:
        raise KeyError("transactions need a user_id (or customer_id) column")
    if "date" in transactions:
        dates = pd.to_datetime(transactions["date"])
    elif "ts" in transactions:
        dates = pd.to_datetime(pd.to_numeric(transactions["ts"]), unit="s")
    else:
        raise KeyError("transactions need a ts (Unix seconds) or date column")
    vcol = "value" if "value" in transactions else "amount"
    if vcol not in transactions:
        raise KeyError("transactions need a value (or amount) column")
    out = pd.DataFrame({
        "customer_id": transactions[cid].astype(str).to_numpy(),
        "date": dates.astype("datetime64[ns]").to_numpy(),
        "value": pd.to_numeric(transactions[vcol], errors="coerce").fillna(0.0).to_numpy(np.float64),
    })
    return out[out["date"].notna()].reset_index(drop=True)


def compute_customer_value(
    snapshot: Snapshot,
    transactions: pd.DataFrame | None = None,
    *,
    value_unit: str | None = None,
    horizon_weeks: float = 52.0,
    discount_rate: float = 0.01,
    tau_days: float = 30.0,
    z_margin: float = 1.645,
    high_value_quantile: float = 0.95,
    n_train_cuts: int = 3,
    min_segment_size: int = 20,
    with_propensity: bool = True,
    importance_repeats: int = 5,
    seed: int = 0,
) -> CustomerValueResult:
    """CLV, influence, influence-weighted value, segments and propensity for every user.

    Args:
        snapshot: the dataset's snapshot (users, interactions with timestamps, follows).
        transactions: optional money transactions (see :func:`normalise_transactions`); None =
            the snapshot's timestamped interactions, one unit each (value unit "interactions").
        value_unit: name of the unit (default "money" with transactions, else "interactions").
        horizon_weeks: CLV horizon and "next period" length H.
        discount_rate: monthly discount rate for CLV (0.01 ~ 12.7 % a year).
        tau_days: influence window (Goyal et al.).
        z_margin: influence significance margin (see :mod:`recsys.value.influence`).
        high_value_quantile: propensity label quantile (0.95 = top 5 %).
        n_train_cuts: propensity training cuts (see :mod:`recsys.value.propensity`).
        min_segment_size: smallest community kept as a segment.
        with_propensity: fit the LightGBM model (needs about (n_train_cuts + 1) x H of history).
        importance_repeats: permutation-importance repeats.
        seed: seed for Leiden and LightGBM.
    Returns:
        :class:`CustomerValueResult`.
    Raises:
        ValueError: the snapshot has no users.
    """
    if snapshot.n_users == 0:
        raise ValueError("the snapshot has no users")
    n = snapshot.n_users
    metrics: dict = {"dataset": snapshot.dataset, "users": n, "horizon_weeks": float(horizon_weeks)}
    if transactions is not None:
        tx = normalise_transactions(transactions)
        known = np.array([snapshot.user_index(u) is not None for u in tx["customer_id"]], dtype=bool)
        metrics["transactions_unknown_user"] = int((~known).sum())
        tx = tx[known].reset_index(drop=True)
        unit = value_unit or "money"
    elif snapshot.has_timestamps:
        tx = snapshot_transactions(snapshot)[["customer_id", "date", "value"]]
        unit = value_unit or "interactions"
    else:
        tx = None
        unit = value_unit or "interactions"
    metrics["value_unit"] = unit
    pr_scores = pagerank(snapshot.follows)
    fol = snapshot.follows.tocsr()
    users = pd.DataFrame({"user_id": snapshot.user_ids.astype(str)})
    users["followers"] = np.asarray(fol.sum(axis=0)).ravel()
    users["followees"] = np.asarray(fol.sum(axis=1)).ravel()
    users["pagerank"] = pr_scores
    for col in ("frequency", "recency", "T", "monetary_value", "value_per_transaction",
                "expected_transactions", "p_active", "p_alive", "churn_risk", "propensity"):
        users[col] = np.nan
    users["clv"] = 0.0
    users["explanation"] = [[] for _ in range(n)]
    users["rfm_segment"] = "no_transactions"
    calibration = pd.DataFrame()
    importance = pd.DataFrame()

    if tx is None or tx.empty:
        counts = np.diff(snapshot.interactions.tocsr().indptr).astype(np.float64)
        users["clv"] = counts
        influence = learn_influence(snapshot, tau_days=tau_days, z_margin=z_margin)
        metrics["clv"] = {"method": "historical-interaction-count (no timestamps: BG/NBD needs dates)"}
    else:
        prop: PropensityResult | None = None
        if with_propensity:
            try:
                prop = fit_propensity(snapshot, tx, horizon_weeks=horizon_weeks, n_train_cuts=n_train_cuts,
                                      high_value_quantile=high_value_quantile, tau_days=tau_days, seed=seed,
                                      importance_repeats=importance_repeats, z_margin=z_margin)
            except ValueError as exc:  # too little history for the temporal design
                log.warning("propensity model skipped: %s", exc)
                metrics["propensity"] = {"skipped": str(exc)}
        current: CutState = prop.current if prop is not None else build_cut(
            snapshot, tx, pd.to_datetime(tx["date"]).max(), horizon_weeks, tau_days, pagerank_scores=pr_scores,
            z_margin=z_margin)
        influence = current.influence
        summ = current.summary
        idx = summ.index.to_numpy()
        x, t_x, T = summ["frequency"], summ["recency"], summ["T"]
        m = expected_value_per_transaction(summ, current.gamma_gamma)
        users.loc[idx, "frequency"] = x.to_numpy()
        users.loc[idx, "recency"] = t_x.to_numpy()
        users.loc[idx, "T"] = T.to_numpy()
        users.loc[idx, "monetary_value"] = summ["monetary_value"].to_numpy()
        users.loc[idx, "value_per_transaction"] = m
        bg = current.bgnbd
        clv_metrics: dict = {"method": "bgnbd+gammagamma", "value_unit": unit, "customers": int(len(summ)),
                             "discount_rate_monthly": discount_rate, "end": str(current.cut.date())}
        if bg is not None:
            users.loc[idx, "clv"] = customer_lifetime_value(bg, x, t_x, T, m, horizon=horizon_weeks,
                                                            step=MONTH_WEEKS, discount_rate=discount_rate)
            users.loc[idx, "expected_transactions"] = bg.conditional_expected_transactions(horizon_weeks, x, t_x, T)
            users.loc[idx, "p_alive"] = bg.p_alive(x, t_x, T)
            p_active = bg.p_active(horizon_weeks, x, t_x, T)
            users.loc[idx, "p_active"] = p_active
            users.loc[idx, "churn_risk"] = 1.0 - p_active
            clv_metrics["bgnbd"] = dict(bg.params)
            clv_metrics["bgnbd_log_likelihood"] = bg.log_likelihood
        else:
            users.loc[idx, "clv"] = summ["total_value"].to_numpy()
            clv_metrics["method"] = "historical-value (too few repeat customers for BG/NBD)"
        if current.gamma_gamma is not None:
            clv_metrics["gamma_gamma"] = dict(current.gamma_gamma.params)
        rfm = rfm_scores(summ)
        users.loc[idx, "rfm_segment"] = rfm["rfm_segment"].to_numpy()
        if prop is not None:
            users.loc[idx, "propensity"] = prop.propensity
            expl = pd.Series(prop.explanations, index=idx)
            users["explanation"] = [expl.get(i, []) for i in range(n)]
            metrics["propensity"] = prop.metrics
            importance = prop.permutation_importance
            eval_state = prop.states.get(pd.Timestamp(prop.metrics["evaluation_cut"]))
            if eval_state is not None:
                calibration, check = clv_holdout_check(snapshot, tx, eval_state, horizon_weeks)
                clv_metrics["holdout"] = check
        metrics["clv"] = clv_metrics

    users["influence"] = influence.influence
    users["weighted_value"] = influence_weighted_value(influence, users["clv"].to_numpy(np.float64))
    metrics["influence"] = {"method": influence.method, **_jsonable(influence.stats),
                            "pagerank_sum": float(pr_scores.sum())}

    comm = follow_communities(snapshot, min_size=min_segment_size, seed=seed)
    users["segment_id"] = comm.segment_id
    users["assignment"] = comm.assignment
    segments = profile_segments(users, snapshot)
    metrics["segments"] = {
        "modularity": comm.modularity, "modularity_leiden": comm.modularity_leiden,
        "modularity_unweighted": comm.modularity_unweighted,
        "communities_leiden": comm.n_communities_leiden, "segments": int(len(segments)),
        "min_segment_size": int(min_segment_size),
        "users_by_rule": {str(k): int(v) for k, v in pd.Series(comm.assignment).value_counts().items()},
        "rfm_segments": {str(k): int(v) for k, v in users["rfm_segment"].value_counts().items()},
    }
    ordered = list(USER_COLUMNS) + [c for c in users.columns if c not in USER_COLUMNS]
    return CustomerValueResult(dataset=snapshot.dataset, value_unit=unit, users=users[ordered], segments=segments,
                               metrics=_jsonable(metrics), calibration=calibration, importance=importance,
                               influence_probabilities=influence.probabilities)


def clv_holdout_check(snapshot: Snapshot, transactions: pd.DataFrame, state: CutState,
                      horizon_weeks: float) -> tuple[pd.DataFrame, dict]:
    """Predicted vs actual next-period transactions and value for the models fitted at ``state.cut``.

    Args:
        snapshot: the snapshot (id maps).
        transactions: the value transactions.
        state: a cut with a fitted BG/NBD (the propensity evaluation cut).
        horizon_weeks: the holdout length.
    Returns:
        ``(by_decile, totals)``: deciles of predicted value (1 = lowest) with ``customers``,
        ``predicted_mean``, ``actual_mean`` (value unit); totals of repeat transactions (days) and
        value, predicted vs actual, with the relative errors.
    """
    if state.bgnbd is None:
        return pd.DataFrame(), {"skipped": "no BG/NBD at the cut"}
    summ = state.summary
    x, t_x, T = summ["frequency"], summ["recency"], summ["T"]
    pred_tx = state.bgnbd.conditional_expected_transactions(horizon_weeks, x, t_x, T)
    pred_value = state.baseline
    days = transactions.assign(day=pd.to_datetime(transactions["date"]).dt.floor("D"))
    cut = state.cut
    window = days[(days["day"] > cut) & (days["day"] <= cut + pd.Timedelta(weeks=horizon_weeks))]
    per_day = window.groupby(["customer_id", "day"]).size().reset_index()
    uidx = np.array([snapshot.user_index(u) for u in per_day["customer_id"]], dtype=np.int64)
    actual_tx = np.bincount(uidx, minlength=snapshot.n_users)[summ.index.to_numpy()].astype(np.float64)
    actual_value = next_period_value(transactions, snapshot, cut, horizon_weeks, summ.index)
    ranks = pd.Series(pred_value).rank(method="first")
    decile = np.ceil(ranks / len(ranks) * 10).astype(int).clip(1, 10).to_numpy()
    table = pd.DataFrame({"decile": decile, "predicted": pred_value, "actual": actual_value})
    by = table.groupby("decile").agg(customers=("actual", "size"), predicted_mean=("predicted", "mean"),
                                     actual_mean=("actual", "mean")).reset_index()
    totals = {
        "cut": str(cut.date()),
        "weeks": float(horizon_weeks),
        "customers": int(len(summ)),
        "predicted_repeat_transactions": float(pred_tx.sum()),
        "actual_repeat_transactions": int(actual_tx.sum()),
        "relative_error_transactions": float((pred_tx.sum() - actual_tx.sum()) / max(actual_tx.sum(), 1.0)),
        "predicted_value": float(pred_value.sum()),
        "actual_value": float(actual_value.sum()),
        "relative_error_value": float((pred_value.sum() - actual_value.sum()) / max(actual_value.sum(), 1e-12)),
    }
    return by, totals


# ---------------------------------------------------------------------------- persistence
def _result_dir(home: str | Path, dataset: str) -> Path:
    return Path(home) / "value" / dataset.replace(":", "_").replace("/", "_")


def save_result(result: CustomerValueResult, home: str | Path) -> Path:
    """Save a result under ``home/value/<dataset>/`` (Parquet + JSON + NPZ). Returns the folder."""
    folder = _result_dir(home, result.dataset)
    folder.mkdir(parents=True, exist_ok=True)
    users = result.users.copy()
    users["explanation"] = [json.dumps(_jsonable(e)) for e in users["explanation"]]
    users.to_parquet(folder / "users.parquet", index=False)
    segs = result.segments.copy()
    for col in ("top_categories", "top_influencers", "rfm_mix", "members_by_rule"):
        if col in segs:
            segs[col] = [json.dumps(_jsonable(v)) for v in segs[col]]
    segs.to_parquet(folder / "segments.parquet", index=False)
    result.calibration.to_parquet(folder / "calibration.parquet", index=False)
    result.importance.to_parquet(folder / "importance.parquet", index=False)
    (folder / "metrics.json").write_text(json.dumps({"value_unit": result.value_unit, **result.metrics}, indent=2))
    if result.influence_probabilities is not None:
        sp.save_npz(folder / "influence.npz", result.influence_probabilities.tocsr())
    return folder


def load_result(home: str | Path, dataset: str) -> CustomerValueResult:
    """Load what :func:`save_result` wrote. Raises FileNotFoundError when nothing was saved."""
    folder = _result_dir(home, dataset)
    if not (folder / "users.parquet").exists():
        raise FileNotFoundError(f"no customer-value result under {folder}")
    users = pd.read_parquet(folder / "users.parquet")
    users["explanation"] = [json.loads(e) for e in users["explanation"]]
    segs = pd.read_parquet(folder / "segments.parquet")
    for col in ("top_categories", "top_influencers", "rfm_mix", "members_by_rule"):
        if col in segs:
            segs[col] = [json.loads(v) for v in segs[col]]
    metrics = json.loads((folder / "metrics.json").read_text())
    unit = metrics.pop("value_unit", "interactions")
    probs = sp.load_npz(folder / "influence.npz").tocsr() if (folder / "influence.npz").exists() else None
    return CustomerValueResult(
        dataset=dataset, value_unit=unit, users=users, segments=segs, metrics=metrics,
        calibration=pd.read_parquet(folder / "calibration.parquet"),
        importance=pd.read_parquet(folder / "importance.parquet"), influence_probabilities=probs,
    )


# ---------------------------------------------------------------------------- write-back
SCORE_COLUMNS = ("clv", "influence", "pagerank", "weighted_value", "churn_risk", "p_alive", "propensity", "rfm_segment")


def segment_properties(segments: pd.DataFrame) -> pd.DataFrame:
    """Segment profiles as node properties, keyed ``segment_id``: scalars, lists of primitives
    (Neo4j list properties, queried without APOC) and a readable ``label``.

    ``top_categories`` (category names, best first) with ``top_category_shares`` beside it,
    ``top_influencers`` (user pseudonyms, best first) with ``top_influencer_scores``, and
    ``label`` (:func:`segment_label`, e.g. ``"Books / Music · high value"``).
    """
    tiers = _value_tiers(segments["mean_value"].to_numpy(np.float64))
    return pd.DataFrame({
        "segment_id": segments["segment_id"].astype(str).to_numpy(),
        "label": [segment_label(cats, tier, churn) for cats, tier, churn in
                  zip(segments["top_categories"], tiers, segments["churn_risk_share"])],
        "size": segments["size"].to_numpy(np.int64),
        "total_value": segments["total_value"].to_numpy(np.float64),
        "mean_value": segments["mean_value"].to_numpy(np.float64),
        "churn_risk_share": segments["churn_risk_share"].astype(np.float64).to_numpy(),
        "top_categories": _object_column([[str(c["category"]) for c in v] for v in segments["top_categories"]]),
        "top_category_shares": _object_column([[float(c["share"]) for c in v] for v in segments["top_categories"]]),
        "top_influencers": _object_column([[str(c["user_id"]) for c in v] for v in segments["top_influencers"]]),
        "top_influencer_scores": _object_column([[float(c["influence"]) for c in v] for v in segments["top_influencers"]]),
    })


def _object_column(values: list) -> np.ndarray:
    """A (n,) object array holding one Python list per row (never a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _value_tiers(mean_value: np.ndarray) -> list[str]:
    """``high`` / ``mid`` / ``low`` value by the rank of each segment's mean value (thirds)."""
    n = len(mean_value)
    if n == 0:
        return []
    order = np.argsort(-np.nan_to_num(mean_value, nan=-np.inf), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return ["high" if r < n / 3 else "mid" if r < 2 * n / 3 else "low" for r in rank]


def segment_label(top_categories: list, tier: str, churn_risk_share: float | None = None) -> str:
    """A readable segment name from its profile: its top two categories, its value tier and an
    "at risk" mark when most members with a history are at churn risk.

    Example: ``"Books / Music · high value"``, ``"no category · low value · at risk"``.
    """
    names = [str(c["category"]) for c in top_categories[:2]] if top_categories else []
    parts = [" / ".join(names) if names else "no category", f"{tier} value"]
    if churn_risk_share is not None and churn_risk_share == churn_risk_share and churn_risk_share > 0.5:
        parts.append("at risk")
    return " · ".join(parts)


def write_back(result: CustomerValueResult, store, model_version: str) -> dict:
    """Write value, influence, weighted value and segments back to the store.

    User scores go through ``store.write_scores("User", ...)`` (Neo4j node properties with the
    Neo4j store). Segments: when the store has ``write_segments(assignments, segments)`` (the
    Neo4j store: ``(:Segment)`` nodes with the profile as properties and
    ``(:User)-[:IN_SEGMENT]->(:Segment)``) it is used; otherwise ``segment`` is written as a user
    score and the profiles as ``Segment`` scores.

    Args:
        result: a :class:`CustomerValueResult`.
        store: a :class:`graph.store.GraphStore`.
        model_version: version tag stored beside the values (also a segment property).
    Returns:
        ``{"users": n, "segments": m, "segment_write": "write_segments" | "score"}``.
    """
    users = result.users
    ids = users["user_id"].to_numpy()
    scores = {c: users[c].to_numpy() for c in SCORE_COLUMNS}
    scores["rfm_segment"] = users["rfm_segment"].astype(str).to_numpy()
    props = segment_properties(result.segments)
    writer = getattr(store, "write_segments", None)
    if callable(writer):
        assignments = pd.DataFrame({"user_id": ids.astype(str), "segment_id": users["segment_id"].astype(str)})
        writer(assignments, props.assign(model_version=model_version))
        how, n_segs = "write_segments", len(props)
    else:
        scores["segment"] = users["segment_id"].astype(str).to_numpy()
        seg_scores = {c: props[c].to_numpy() for c in props.columns if c != "segment_id"}
        n_segs = store.write_scores("Segment", props["segment_id"].to_numpy(), seg_scores, model_version)
        how = "score"
    n_users = store.write_scores("User", ids, scores, model_version)
    return {"users": int(n_users), "segments": int(n_segs), "segment_write": how}


# ---------------------------------------------------------------------------- the whole job
def run_value_job(snapshot: Snapshot, store, home: str | Path, model_version: str,
                  transactions: pd.DataFrame | None = None, **options) -> dict:
    """Compute, write back, save for the API and write the HTML report (``socialrec value``).

    Args:
        snapshot: the dataset's snapshot.
        store: the store to write scores/segments back to.
        home: ``SOCIALREC_HOME``; the result goes to ``home/value/<dataset>/`` and the report to
            ``home/reports/value-<dataset>.html``.
        model_version: version tag for the write-back.
        transactions: optional money transactions (see :func:`compute_customer_value`).
        options: keyword arguments of :func:`compute_customer_value`.
    Returns:
        A JSON-able summary: ``{"dataset", "value_unit", "model_version", "report", "result_dir",
        "written", "clv", "propensity", "influence", "segments"}``.
    """
    from recsys.value.report import write_report

    result = compute_customer_value(snapshot, transactions, **options)
    written = write_back(result, store, model_version)
    folder = save_result(result, home)
    safe = snapshot.dataset.replace(":", "_").replace("/", "_")
    report = write_report(result, Path(home) / "reports" / f"value-{safe}.html")
    m = result.metrics
    return _jsonable({
        "dataset": snapshot.dataset, "value_unit": result.value_unit, "model_version": model_version,
        "report": str(report), "result_dir": str(folder), "written": written,
        "clv": m.get("clv"), "propensity": m.get("propensity"), "influence": m.get("influence"),
        "segments": m.get("segments"),
    })
